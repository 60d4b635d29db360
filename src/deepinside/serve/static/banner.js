/* The banner: one readable sentence for any error. */

import { $ } from "./dom.js";
import { ApiError } from "./errors.js";

export function showError(err) {
  let title = "Something went wrong";
  let detail = "";
  if (err instanceof ApiError) {
    title = err.title || title;
    detail = err.detail || "";
  } else if (err instanceof TypeError && /fetch|network/i.test(String(err.message))) {
    title = "Could not reach the server";
    detail = "Check that deepinside serve is still running.";
  } else if (err && err.message) {
    detail = String(err.message);
  } else if (typeof err === "string") {
    detail = err;
  }
  $("banner-title").textContent = title;
  $("banner-detail").textContent = detail;
  $("banner").hidden = false;
}

export function hideBanner() {
  $("banner").hidden = true;
}

export function setupBanner() {
  $("banner-close").addEventListener("click", hideBanner);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("banner").hidden) hideBanner();
  });
  window.addEventListener("unhandledrejection", (ev) => {
    ev.preventDefault();
    showError(ev.reason);
  });
}
