/* The photo: chosen or dropped, then classified (the top-5 bars). */

import { api } from "./api.js";
import { hideBanner, showError } from "./banner.js";
import { $, el } from "./dom.js";
import { state } from "./state.js";
import { markTop, setTarget, updateButtons } from "./target.js";

function renderTop() {
  const list = $("top5");
  list.textContent = "";
  $("top-empty").hidden = state.top.length > 0;
  for (const t of state.top) {
    const pct = Math.max(0, Math.min(100, 100 * Number(t.prob || 0)));
    const fill = el("span", { className: "bar-fill" });
    fill.style.width = `${pct.toFixed(1)}%`;
    const btn = el("button", { type: "button", className: "bar",
      title: `Explain “${t.name}” (class ${t.class})` },
    el("span", { className: "bar-name", textContent: t.name }),
    el("span", { className: "bar-track" }, fill),
    el("span", { className: "bar-value", textContent: `${pct.toFixed(1)}%` }));
    btn.dataset.class = String(t.class);
    btn.setAttribute("aria-pressed", "false");
    btn.addEventListener("click", () => setTarget(t.class, t.name));
    list.appendChild(el("li", {}, btn));
  }
  markTop();
}

/** The photo's top-5 (/v1/classify); the top-1 becomes the target. */
export async function classify() {
  if (!state.file) return;
  $("top5").textContent = "";
  $("top-empty").hidden = false;
  $("top-empty").textContent = "Classifying…";
  const form = new FormData();
  form.append("image", state.file);
  form.append("top_k", "5");
  try {
    const res = await api("/v1/classify", { method: "POST", body: form });
    state.top = res.top || [];
    renderTop();
    if (!state.target && state.top.length) setTarget(state.top[0].class, state.top[0].name);
  } catch (err) {
    $("top-empty").textContent = "The photo could not be classified.";
    showError(err);
  }
  updateButtons();
}

function choosePhoto(file) {
  if (file.type && !file.type.startsWith("image/")) {
    showError(new Error(`"${file.name}" is not an image.`));
    return;
  }
  hideBanner();
  state.file = file;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  $("photo-name").textContent = file.name;
  state.top = [];
  state.target = null;
  $("class-input").value = "";
  $("result-card").hidden = true;
  $("compare-card").hidden = true;
  updateButtons();
  classify();
}

export function setupPhoto() {
  const input = $("photo-input");
  const zone = $("dropzone");
  input.addEventListener("change", () => {
    if (input.files && input.files[0]) choosePhoto(input.files[0]);
  });
  zone.addEventListener("dragenter", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    const f = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
    if (f) choosePhoto(f);
  });
  // A photo dropped beside the zone must not make the browser leave the page.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
}
