/* Explain: one method's map of the photo for the chosen class. */

import { api } from "./api.js";
import { hideBanner, showError } from "./banner.js";
import { $ } from "./dom.js";
import { collectParams } from "./params.js";
import { explainForm, totalMs } from "./request.js";
import { showResult } from "./result.js";
import { state } from "./state.js";
import { requireTarget, setBusy, setTarget, targetLabel } from "./target.js";

export async function explain(ev) {
  if (ev) ev.preventDefault();
  if (state.busy) return;
  let params;
  try {
    requireTarget();
    params = collectParams();
  } catch (err) {
    showError(err);
    return;
  }
  const method = $("method-select").value;
  setBusy(true, `Explaining “${targetLabel()}” with ${method}…`);
  try {
    const res = await api("/v1/explain", {
      method: "POST",
      body: explainForm(method, params, {
        localize: true, values: true, sign: $("sign-field").hidden ? "" : $("sign-select").value,
      }),
    });
    hideBanner();
    if (!state.target && res.target && res.target.class !== undefined) {
      setTarget(res.target.class, res.target.name);
    }
    await showResult(res);
    $("explain-status").textContent = res.timing_ms !== undefined
      ? `Done in ${Math.round(Number(totalMs(res.timing_ms)))} ms.` : "Done.";
  } catch (err) {
    $("explain-status").textContent = "";
    showError(err);
  } finally {
    setBusy(false);
  }
}
