/* The explain request's form, and the time its answer took. */

import { state } from "./state.js";
import { targetValue } from "./target.js";

/** The multipart form of /v1/explain; ``extra``: more fields ({localize, values, sign}). */
export function explainForm(method, params, extra = {}) {
  const form = new FormData();
  form.append("image", state.file);
  form.append("method", method);
  form.append("target", targetValue());
  form.append("params", JSON.stringify(params));
  for (const [key, value] of Object.entries(extra)) {
    if (value !== undefined && value !== null && value !== "") form.append(key, String(value));
  }
  return form;
}

/** Milliseconds of a ``timing_ms`` ({map, render} or a number). */
export function totalMs(t) {
  if (typeof t === "number") return t;
  if (t && typeof t === "object") {
    if (typeof t.total === "number") return t.total;
    return Object.values(t).filter((v) => typeof v === "number").reduce((a, b) => a + b, 0);
  }
  return 0;
}
