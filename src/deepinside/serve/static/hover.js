/* The map's value under the pointer, from its own values (map.f32). */

import { $ } from "./dom.js";
import { label } from "./scale.js";
import { state } from "./state.js";

function showValue(ev) {
  const res = state.result;
  const img = ev.currentTarget;
  if (!state.values || !res || !img.clientWidth || !img.clientHeight) return;
  const w = Number(res.map.width);
  const h = Number(res.map.height);
  const x = Math.min(w - 1, Math.max(0, Math.floor((ev.offsetX / img.clientWidth) * w)));
  const y = Math.min(h - 1, Math.max(0, Math.floor((ev.offsetY / img.clientHeight) * h)));
  $("hover-value").textContent = `value at (${x}, ${y}): ${label(state.values[y * w + x])}`;
}

export function setupHover() {
  for (const id of ["map-img", "overlay-img"]) {
    $(id).addEventListener("mousemove", showValue);
    $(id).addEventListener("mouseleave", () => { $("hover-value").textContent = ""; });
  }
}
