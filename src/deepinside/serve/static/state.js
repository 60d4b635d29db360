/* What the page knows, shared by its modules. */

export const state = {
  classes: [],          // short names, by index
  methods: [],          // [{name, description, paper, signed, params}]
  file: null,           // the chosen photo (File)
  photoUrl: null,       // object URL of the photo
  top: [],              // top-5 of /v1/classify
  target: null,         // {index, name}
  result: null,         // last /v1/explain answer
  values: null,         // its map's values (Float32Array, height * width), or null
  objectUrls: [],       // object URLs of the download links (revoked on the next result)
  busy: false,
  loaded: false,
};
