/* An explanation on the page: photo, map, overlay, box and mask, and its downloads. */

import { $, pngUrl } from "./dom.js";
import { showScale } from "./scale.js";
import { state } from "./state.js";
import { mapValues, npyBlob } from "./values.js";

export function applyOpacity() {
  const v = Number($("opacity").value);
  $("overlay-layer").style.opacity = String(v / 100);
  $("opacity-out").textContent = `${v}%`;
}

export function placeBox() {
  const res = state.result;
  const box = $("box-layer");
  const b = res && res.box;
  const w = res && res.map && Number(res.map.width);
  const h = res && res.map && Number(res.map.height);
  if (!Array.isArray(b) || b.length !== 4 || !w || !h) {
    box.hidden = true;
    $("show-box").disabled = true;
    return;
  }
  $("show-box").disabled = false;
  // Photo pixels -> percentages of the displayed photo, so it follows any display size.
  const [x0, y0, x1, y1] = b.map(Number);
  box.style.left = `${(100 * x0) / w}%`;
  box.style.top = `${(100 * y0) / h}%`;
  box.style.width = `${(100 * (x1 - x0)) / w}%`;
  box.style.height = `${(100 * (y1 - y0)) / h}%`;
  box.title = `box [${b.join(", ")}]`;
  box.hidden = !$("show-box").checked;
}

export function showMask() {
  $("mask-layer").hidden = !$("show-mask").checked || !$("mask-layer").getAttribute("src");
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  state.objectUrls.push(url);
  return url;
}

function link(id, href, name) {
  const a = $(id);
  a.href = href;
  a.download = name;
}

async function downloads(res, stem) {
  link("dl-map", pngUrl(res.map && res.map.png), `${stem}.png`);
  link("dl-overlay", pngUrl(res.overlay_png), `${stem}_overlay.png`);
  const json = new Blob([JSON.stringify(res, null, 2)], { type: "application/json" });
  link("dl-json", objectUrl(json), `${stem}.json`);
  const npy = $("dl-npy");
  npy.hidden = true;
  npy.removeAttribute("href");
  state.values = await mapValues(res.map);
  if (state.values) {  // the map's own values, with their sign
    link("dl-npy", objectUrl(npyBlob(state.values, res.map.height, res.map.width)), `${stem}.npy`);
    npy.hidden = false;
  }
}

/** Show an answer of /v1/explain. */
export async function showResult(res) {
  state.result = res;
  state.values = null;
  for (const u of state.objectUrls) URL.revokeObjectURL(u);
  state.objectUrls = [];

  $("result-card").hidden = false;
  const target = res.target || {};
  $("result-meta").textContent = `${res.method || ""} · ${target.name || ""}` +
    (target.class !== undefined ? ` (class ${target.class})` : "");

  $("photo-img").src = state.photoUrl;
  $("map-img").src = pngUrl(res.map && res.map.png);
  $("overlay-img").src = pngUrl(res.overlay_png);
  $("overlay-layer").src = pngUrl(res.overlay_png);
  $("hover-value").textContent = "";
  showScale(res.scale);
  applyOpacity();

  const mask = $("mask-layer");
  if (res.mask_png) mask.src = pngUrl(res.mask_png);
  else mask.removeAttribute("src");
  showMask();
  $("show-mask").disabled = !res.mask_png;
  placeBox();
  await downloads(res, `${res.method || "map"}_${target.class ?? ""}`);
}

export function setupResult() {
  $("opacity").addEventListener("input", applyOpacity);
  $("opacity").addEventListener("change", applyOpacity);
  $("show-box").addEventListener("change", placeBox);
  $("show-mask").addEventListener("change", showMask);
  applyOpacity();
}
