/* The overlay's colour bar: the server's bar (scale.bar_png, drawn by deepinside.render) with
 * the values of its scale ({sign, low, high}) beside it, in the map's units. */

import { $, el, pngUrl } from "./dom.js";

const STOPS = [1, 0.75, 0.5, 0.25, 0];  // top to bottom

/** A value as a short label: 3 significant digits. */
export function label(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? String(Number(v.toPrecision(3))) : v.toExponential(2);
}

const WHAT = {
  all: "red: for the class, blue: against",
  positive: "the positive part",
  negative: "the negative part, as magnitudes",
  absolute: "magnitudes",
};

/** Show ``scale`` beside the overlay (hidden when there is none). */
export function showScale(scale) {
  const bar = $("colour-bar");
  const ok = scale && Number.isFinite(Number(scale.low)) && Number.isFinite(Number(scale.high));
  bar.hidden = !ok || !scale.bar_png;
  $("scale-caption").textContent = ok ? `(${scale.sign}: ${WHAT[scale.sign] || scale.sign}; ` +
    "values in the map's units, logits for attributions such as IG)" : "";
  if (bar.hidden) return;
  const low = Number(scale.low);
  const high = Number(scale.high);
  const ramp = $("bar-ramp");
  ramp.style.backgroundImage = `url("${pngUrl(scale.bar_png)}")`;
  ramp.setAttribute("aria-label", `colour scale from ${label(low)} to ${label(high)}`);
  $("bar-labels").replaceChildren(...STOPS.map((f) => el("li", {
    textContent: label(low + (high - low) * f),
  })));
}
