/* What the server offers: the class names and the methods (with their parameters). */

import { api } from "./api.js";
import { showError } from "./banner.js";
import { $, el } from "./dom.js";
import { renderParams } from "./params.js";
import { state } from "./state.js";

export function currentMethod() {
  const name = $("method-select").value;
  return state.methods.find((m) => m.name === name) || null;
}

/** A signed method drawn with its sign reduces the colour channels by their sum: its default
 * (sum_abs) would drop the sign (the server does the same when reduce is left out). */
export function matchReduce() {
  const m = currentMethod();
  const input = $("param-reduce");
  if (!m || !m.signed || !input || !m.params.reduce) return;
  input.value = $("sign-select").value === "absolute" ? String(m.params.reduce.default) : "sum";
}

/** The method's inputs and, for a signed method, the sign selector. */
export function showMethod() {
  const m = currentMethod();
  renderParams(m);
  $("sign-field").hidden = !(m && m.signed);
  matchReduce();
}

function fillClasses() {
  const names = [...new Set(state.classes)];
  $("class-list").replaceChildren(...names.map((name) => el("option", { value: name })));
}

function fillMethods() {
  const sel = $("method-select");
  const previous = sel.value;
  sel.replaceChildren(...state.methods.map((m) => el("option", { value: m.name, textContent: m.name })));
  if (previous && state.methods.some((m) => m.name === previous)) sel.value = previous;
  showMethod();
}

/** Load the classes and methods; then ``onLoaded()``. */
export async function loadCatalogue(onLoaded) {
  try {
    const [classes, methods] = await Promise.all([api("/v1/classes"), api("/v1/methods")]);
    state.classes = classes.classes || [];
    state.methods = methods.methods || [];
    fillClasses();
    fillMethods();
    state.loaded = true;
    onLoaded();
  } catch (err) {
    showError(err);
  }
}
