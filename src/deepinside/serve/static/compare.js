/* Compare: every method's map of the photo, one after another. */

import { api } from "./api.js";
import { showError } from "./banner.js";
import { $, el, pngUrl } from "./dom.js";
import { ApiError } from "./errors.js";
import { collectParams } from "./params.js";
import { explainForm, totalMs } from "./request.js";
import { state } from "./state.js";
import { requireTarget, setBusy } from "./target.js";

/** One method's figure in the grid; true if it failed. Stops the run on a 401. */
async function compareOne(grid, m, params) {
  const cap = el("figcaption", { textContent: `${m.name}…` });
  const fig = el("figure", {}, cap);
  grid.appendChild(fig);
  try {
    const res = await api("/v1/explain", { method: "POST", body: explainForm(m.name, params) });
    fig.insertBefore(el("img", { src: pngUrl(res.map && res.map.png), alt: `${m.name} map` }), cap);
    const ms = res.timing_ms !== undefined ? ` · ${Math.round(totalMs(res.timing_ms))} ms` : "";
    cap.textContent = `${m.name}${ms}`;
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
  let currentParams = {};
  try { currentParams = collectParams(); } catch (e) { currentParams = {}; }
  let failures = 0;
  try {
    for (const m of methods) {
      if (await compareOne(grid, m, m.name === current ? currentParams : {})) failures += 1;
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
