/* The class to explain: picked from the top-5 bars or typed, and the buttons it enables. */

import { $ } from "./dom.js";
import { state } from "./state.js";

export function updateButtons() {
  const ready = Boolean(state.file) && !state.busy && state.methods.length > 0;
  $("explain-btn").disabled = !ready;
  $("compare-btn").disabled = !ready;
}

export function setBusy(on, message) {
  state.busy = on;
  document.body.classList.toggle("busy", on);
  if (message !== undefined) $("explain-status").textContent = message;
  updateButtons();
}

export function markTop() {
  for (const btn of $("top5").querySelectorAll("button.bar")) {
    const on = state.target && Number(btn.dataset.class) === state.target.index;
    btn.setAttribute("aria-pressed", on ? "true" : "false");
  }
}

export function setTarget(index, name) {
  state.target = { index: Number(index), name };
  $("class-input").value = name;
  $("class-hint").textContent = `class ${index}`;
  markTop();
  updateButtons();
}

export function onClassTyped() {
  const v = $("class-input").value.trim();
  state.target = null;
  if (v) {
    // A name from the top-5 first (names can repeat in ImageNet), then the first such name.
    const fromTop = state.top.find((t) => t.name === v);
    let index = fromTop ? fromTop.class : state.classes.indexOf(v);
    if (index < 0) {
      const lower = v.toLowerCase();
      index = state.classes.findIndex((c) => c.toLowerCase() === lower);
    }
    if (index < 0 && /^\d+$/.test(v) && Number(v) < state.classes.length) index = Number(v);
    if (index >= 0) state.target = { index, name: state.classes[index] || v };
  }
  $("class-hint").textContent = state.target ? `class ${state.target.index}`
    : v ? "not a short class name: the server will try it as a synonym" : "";
  markTop();
  updateButtons();
}

/** The class index, or else the typed text (the server resolves synonyms and says why not). */
export function targetValue() {
  return state.target ? String(state.target.index) : $("class-input").value.trim();
}

export function targetLabel() {
  return state.target ? state.target.name : $("class-input").value.trim();
}

export function requireTarget() {
  if (!state.file) throw new Error("Choose a photo first.");
  if (!targetValue()) {
    $("class-input").focus();
    throw new Error("Choose a class: click one of the top-5 or type a class name.");
  }
}
