/* The bearer token: kept in sessionStorage, asked for when the server answers 401. */

import { $ } from "./dom.js";
import { hideBanner } from "./banner.js";

const TOKEN_KEY = "deepinside.token";

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (e) {
    return "";
  }
}

export function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

export function askForToken() {
  const form = $("token-form");
  if (form.hidden) {
    form.hidden = false;
    $("token-input").focus();
  }
}

/** The token form; ``onToken()`` runs when a token is given (to retry what failed). */
export function setupToken(onToken) {
  if (token()) {
    $("token-form").hidden = false;
    $("token-input").value = token();
  }
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token-input").value.trim();
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage refused: keep going without it */ }
    hideBanner();
    onToken();
  });
  $("token-clear").addEventListener("click", () => {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
    $("token-input").value = "";
  });
}
