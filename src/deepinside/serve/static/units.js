/* The Units tab: the image that excites a unit most (feature visualisation, Olah et al.
 * 2017): a channel, a neuron (a channel at one position of the layer's grid) or a whole layer
 * (DeepDream), optionally along a direction of its channels. */

import { showError } from "./banner.js";
import { $, el } from "./dom.js";
import { mountJobControls, runJob } from "./jobs.js";
import { state } from "./state.js";

/** Show the fields of the chosen kind of unit. */
function showKind() {
  const kind = $("un-kind").value;
  for (const field of document.querySelectorAll("#un-form [data-kinds]")) {
    field.hidden = !field.dataset.kinds.split(" ").includes(kind);
  }
}

/** A whole number >= 0 from an input: null when empty, NaN when invalid. */
function indexOf(input) {
  const text = input.value.trim();
  if (text === "") return null;
  const n = Number(text);
  return Number.isInteger(n) && n >= 0 ? n : NaN;
}

/** The body of the job (throws a readable Error on a bad field). */
function unitBody() {
  const kind = $("un-kind").value;
  const layer = $("un-layer").value.trim();
  if (!layer) throw Object.assign(new Error("Type a layer, e.g. blocks.5."), { field: "un-layer" });
  if (kind === "layer") {
    const text = $("un-direction").value.trim();
    if (!text) return { layer };
    const direction = text.split(/[\s,]+/).filter(Boolean).map(Number);
    if (!direction.every(Number.isFinite)) {
      throw Object.assign(new Error("The direction must be numbers separated by commas."),
        { field: "un-direction" });
    }
    return { layer, direction };
  }
  const channel = indexOf($("un-channel"));
  if (channel === null || Number.isNaN(channel)) {
    throw Object.assign(new Error("The channel must be a whole number from 0."), { field: "un-channel" });
  }
  if (kind === "channel") return { unit: `${layer}:${channel}` };
  const x = indexOf($("un-x"));
  const y = indexOf($("un-y"));
  if (Number.isNaN(x) || Number.isNaN(y) || (x === null) !== (y === null)) {
    throw Object.assign(new Error("Give both x and y as whole numbers from 0, or neither (the centre)."),
      { field: Number.isNaN(x) || x === null ? "un-x" : "un-y" });
  }
  return { neuron: x === null ? `${layer}:${channel}` : `${layer}:${channel}:${x}:${y}` };
}

async function makeUnit(ev) {
  ev.preventDefault();
  let body;
  try {
    body = unitBody();
  } catch (err) {
    if (err.field) $(err.field).focus();
    showError(err);
    return;
  }
  await runJob("un", body, "The visualisation failed");
}

/** The model's layers, as the methods' layer parameter lists them. */
export function fillLayers() {
  const spec = state.methods.map((m) => (m.params || {}).layer).find((p) => p && Array.isArray(p.choices));
  $("layer-list").replaceChildren(...(spec ? spec.choices : []).map((n) => el("option", { value: n })));
}

export function setupUnits() {
  mountJobControls("un");
  $("un-kind").addEventListener("change", showKind);
  $("un-form").addEventListener("submit", makeUnit);
  showKind();
}
