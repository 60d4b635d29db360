/* The page's elements by id, and the small helpers every module uses. */

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** A data: URL for a base64 PNG ("" for none). */
export function pngUrl(b64) {
  return b64 ? `data:image/png;base64,${b64}` : "";
}

/** A new element with properties and children: el("img", {src, alt}). */
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}
