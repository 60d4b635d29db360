/* The map's values, as the server sent them (``map.f32``: float32, little-endian, base64),
 * and their NumPy .npy file. The browser decodes the base64 (a data: URL); nothing here
 * parses an image. */

/** ``map`` ({width, height, f32}) -> Float32Array(height * width), row-major; null if absent. */
export async function mapValues(map) {
  if (!map || typeof map.f32 !== "string") return null;
  const resp = await fetch(`data:application/octet-stream;base64,${map.f32}`);
  const values = new Float32Array(await resp.arrayBuffer());
  return values.length === Number(map.width) * Number(map.height) ? values : null;
}

/** A NumPy format 1.0 .npy of a float32 (height, width) array, little-endian, C order. */
export function npyBlob(values, height, width) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${height}, ${width}), }`;
  const pad = (64 - ((10 + header.length + 1) % 64)) % 64;
  header += " ".repeat(pad) + "\n";
  const buf = new ArrayBuffer(10 + header.length + 4 * values.length);
  const dv = new DataView(buf);
  [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0].forEach((b, i) => dv.setUint8(i, b));
  dv.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) dv.setUint8(10 + i, header.charCodeAt(i));
  const off = 10 + header.length;
  for (let i = 0; i < values.length; i++) dv.setFloat32(off + 4 * i, values[i], true);
  return new Blob([buf], { type: "application/octet-stream" });
}
