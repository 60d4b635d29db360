/* The HTTP API (docs/serve.md): every /v1 call adds the token and turns a non-2xx answer
 * (problem+json) into an ApiError. */

import { ApiError } from "./errors.js";
import { askForToken, authHeaders } from "./token.js";

export async function problemOf(resp) {
  let title = resp.statusText || `HTTP ${resp.status}`;
  let detail = "";
  try {
    const text = await resp.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body === "object") {
        title = body.title || title;
        detail = typeof body.detail === "string" ? body.detail
          : body.detail ? JSON.stringify(body.detail) : "";
      }
    } catch (e) {
      if (text && text.length < 300 && !/<html/i.test(text)) detail = text;
    }
  } catch (e) { /* no body */ }
  if (!detail) detail = `The server answered ${resp.status}.`;
  return new ApiError(resp.status, title, detail);
}

/** fetch with the token; the answer's JSON, or throws an ApiError. */
export async function api(path, opts = {}) {
  const headers = Object.assign({ Accept: "application/json" }, opts.headers || {}, authHeaders());
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  if (!resp.ok) {
    const err = await problemOf(resp);
    if (resp.status === 401) askForToken();
    throw err;
  }
  if (resp.status === 204) return null;
  return resp.json();
}

export function postJson(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}
