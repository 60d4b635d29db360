/* Compare: every method's map of the photo over it, one after another, in the Sign selector's
 * sign where the method has one (the others at their default, absolute, with a note). */

import { api } from "./api.js";
import { showError } from "./banner.js";
import { $, el, pngUrl } from "./dom.js";
import { ApiError } from "./errors.js";
import { collectParams } from "./params.js";
import { explainForm, totalMs } from "./request.js";
import { state } from "./state.js";
import { requireTarget, setBusy } from "./target.js";

/** The sign ``m`` is drawn in when the grid asks for ``sign``: that sign if the method has it
 * (``signs`` of /v1/methods), else "auto" (the server draws it at its ``default_sign``). */
function signOf(m, sign) {
  return (m.signs || []).includes(sign) ? sign : "auto";
}

/** One method's figure in the grid: its overlay in ``sign`` where it has one; true if it
 * failed. Stops the run on a 401. */
async function compareOne(grid, m, params, sign) {
  const cap = el("figcaption", { textContent: `${m.name}…` });
  const fig = el("figure", {}, cap);
  grid.appendChild(fig);
  try {
    const res = await api("/v1/explain", {
      method: "POST", body: explainForm(m.name, params, { sign: signOf(m, sign) }),
    });
    const drawn = (res.scale && res.scale.sign) || "";
    fig.insertBefore(el("img", { src: pngUrl(res.overlay_png), alt: `${m.name} map (${drawn})` }), cap);
    const ms = res.timing_ms !== undefined ? ` · ${Math.round(totalMs(res.timing_ms))} ms` : "";
    cap.textContent = `${m.name} · ${drawn}${ms}`;
    if (drawn !== sign) {
      fig.appendChild(el("small", {
        className: "muted sign-note", textContent: `No sign: drawn ${drawn} (magnitudes).`,
      }));
    }
    return false;
  } catch (err) {
    cap.textContent = `${m.name}: failed`;
    const text = err instanceof ApiError ? (err.detail || err.title) : String(err.message || err);
    fig.insertBefore(el("p", { className: "error-text", textContent: text }), cap);
    if (err instanceof ApiError && err.status === 401) throw err;
    return true;
  }
}

export async function compare() {
  if (state.busy) return;
  try {
    requireTarget();
  } catch (err) {
    showError(err);
    return;
  }
  const methods = state.methods.slice();
  const grid = $("compare-grid");
  const progress = $("compare-progress");
  $("compare-card").hidden = false;
  grid.textContent = "";
  progress.max = methods.length;
  progress.value = 0;
  setBusy(true, `Comparing ${methods.length} methods…`);
  const current = $("method-select").value;
  const sign = $("sign-select").value;  // kept while an unsigned method hides it
  $("compare-sign").textContent = `(${sign} where a method has a sign)`;
  let currentParams = {};
  try { currentParams = collectParams(); } catch (e) { currentParams = {}; }
  let failures = 0;
  try {
    for (const m of methods) {
      if (await compareOne(grid, m, m.name === current ? currentParams : {}, sign)) failures += 1;
      progress.value += 1;
    }
    $("explain-status").textContent = failures
      ? `Compared; ${failures} method(s) failed.` : "Compared.";
  } catch (err) {
    showError(err);
  } finally {
    setBusy(false);
  }
}
