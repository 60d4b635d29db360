/* deepinside serve: the page. Vanilla JS, no build step, no third-party code.
 *
 * The HTTP API is described in docs/serve.md. Every /v1 call goes through api(), which adds
 * the bearer token (kept in sessionStorage) and turns a non-2xx answer (problem+json) into an
 * ApiError whose title and detail the banner shows.
 */
"use strict";

(function () {
  const TOKEN_KEY = "deepinside.token";
  const $ = (id) => document.getElementById(id);

  const state = {
    classes: [],          // short names, by index
    methods: [],          // [{name, description, paper, params}]
    file: null,           // the chosen photo (File)
    photoUrl: null,       // object URL of the photo
    top: [],              // top-5 of /v1/classify
    target: null,         // {index, name}
    result: null,         // last /v1/explain answer
    objectUrls: [],       // object URLs of the download links (revoked on the next result)
    busy: false,
    loaded: false,
  };

  // ---------------------------------------------------------------- errors and the banner

  class ApiError extends Error {
    constructor(status, title, detail) {
      super(detail ? `${title}: ${detail}` : title);
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
  }

  function showError(err) {
    let title = "Something went wrong";
    let detail = "";
    if (err instanceof ApiError) {
      title = err.title || title;
      detail = err.detail || "";
    } else if (err instanceof TypeError && /fetch|network/i.test(String(err.message))) {
      title = "Could not reach the server";
      detail = "Check that deepinside serve is still running.";
    } else if (err && err.message) {
      detail = String(err.message);
    } else if (typeof err === "string") {
      detail = err;
    }
    $("banner-title").textContent = title;
    $("banner-detail").textContent = detail;
    $("banner").hidden = false;
  }

  function hideBanner() {
    $("banner").hidden = true;
  }

  // ---------------------------------------------------------------- the API

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function authHeaders() {
    const t = token();
    return t ? { Authorization: `Bearer ${t}` } : {};
  }

  async function problemOf(resp) {
    let title = resp.statusText || `HTTP ${resp.status}`;
    let detail = "";
    try {
      const text = await resp.text();
      try {
        const body = JSON.parse(text);
        if (body && typeof body === "object") {
          title = body.title || title;
          detail = typeof body.detail === "string" ? body.detail
            : body.detail ? JSON.stringify(body.detail) : "";
        }
      } catch (e) {
        if (text && text.length < 300 && !/<html/i.test(text)) detail = text;
      }
    } catch (e) { /* no body */ }
    if (!detail) detail = `The server answered ${resp.status}.`;
    return new ApiError(resp.status, title, detail);
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {}, authHeaders());
    const resp = await fetch(path, Object.assign({}, opts, { headers }));
    if (!resp.ok) {
      const err = await problemOf(resp);
      if (resp.status === 401) askForToken();
      throw err;
    }
    if (resp.status === 204) return null;
    return resp.json();
  }

  function postJson(path, body) {
    return api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  // ---------------------------------------------------------------- the token

  function askForToken() {
    const form = $("token-form");
    if (form.hidden) {
      form.hidden = false;
      $("token-input").focus();
    }
  }

  function setupToken() {
    if (token()) {
      $("token-form").hidden = false;
      $("token-input").value = token();
    }
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token-input").value.trim();
      try {
        if (t) sessionStorage.setItem(TOKEN_KEY, t);
        else sessionStorage.removeItem(TOKEN_KEY);
      } catch (e) { /* storage refused: keep going without it */ }
      hideBanner();
      if (!state.loaded) loadCatalogue();
      else if (state.file && !state.top.length) classify();
    });
    $("token-clear").addEventListener("click", () => {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
      $("token-input").value = "";
    });
  }

  // ---------------------------------------------------------------- tabs

  function setupTabs() {
    const tabs = [$("tab-explain"), $("tab-classmodel"), $("tab-units")];
    function select(tab) {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !on;
      }
    }
    tabs.forEach((tab, i) => {
      tab.addEventListener("click", () => select(tab));
      tab.addEventListener("keydown", (ev) => {
        let j = null;
        if (ev.key === "ArrowRight") j = (i + 1) % tabs.length;
        else if (ev.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
        else if (ev.key === "Home") j = 0;
        else if (ev.key === "End") j = tabs.length - 1;
        if (j !== null) {
          ev.preventDefault();
          select(tabs[j]);
          tabs[j].focus();
        }
      });
    });
  }

  // ---------------------------------------------------------------- classes and methods

  async function loadCatalogue() {
    try {
      const [classes, methods] = await Promise.all([api("/v1/classes"), api("/v1/methods")]);
      state.classes = classes.classes || [];
      state.methods = methods.methods || [];
      fillClasses();
      fillMethods();
      state.loaded = true;
      if (state.file && !state.top.length) classify();
    } catch (err) {
      showError(err);
    }
  }

  function fillClasses() {
    const list = $("class-list");
    list.textContent = "";
    const seen = new Set();
    const frag = document.createDocumentFragment();
    for (const name of state.classes) {
      if (seen.has(name)) continue;
      seen.add(name);
      const opt = document.createElement("option");
      opt.value = name;
      frag.appendChild(opt);
    }
    list.appendChild(frag);
  }

  function fillMethods() {
    const sel = $("method-select");
    const previous = sel.value;
    sel.textContent = "";
    for (const m of state.methods) {
      const opt = document.createElement("option");
      opt.value = m.name;
      opt.textContent = m.name;
      sel.appendChild(opt);
    }
    if (previous && state.methods.some((m) => m.name === previous)) sel.value = previous;
    renderParams();
  }

  function currentMethod() {
    const name = $("method-select").value;
    return state.methods.find((m) => m.name === name) || null;
  }

  function isIntType(t) { return /^(int|integer)$/i.test(String(t || "")); }
  function isFloatType(t) { return /^(float|number|double|real)$/i.test(String(t || "")); }
  function isBoolType(t) { return /^(bool|boolean)$/i.test(String(t || "")); }

  function renderParams() {
    const m = currentMethod();
    const box = $("params");
    for (const el of Array.from(box.querySelectorAll(".field"))) el.remove();
    $("method-desc").textContent = m ? [m.description, m.paper].filter(Boolean).join(" — ") : "";
    const params = (m && m.params) || {};
    const names = Object.keys(params);
    $("params-empty").hidden = names.length > 0;
    for (const name of names) {
      const spec = params[name] || {};
      const id = `param-${name}`;
      const field = document.createElement("div");
      field.className = "field";
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = name;
      let input;
      if (Array.isArray(spec.choices) && spec.choices.length) {
        input = document.createElement("select");
        for (const c of spec.choices) {
          const opt = document.createElement("option");
          opt.value = String(c);
          opt.textContent = String(c);
          input.appendChild(opt);
        }
        if (spec.default !== undefined && spec.default !== null) input.value = String(spec.default);
      } else if (isBoolType(spec.type)) {
        input = document.createElement("input");
        input.type = "checkbox";
        input.checked = Boolean(spec.default);
        field.classList.add("inline");
      } else if (isIntType(spec.type) || isFloatType(spec.type)) {
        input = document.createElement("input");
        input.type = "number";
        input.step = isIntType(spec.type) ? "1" : "any";
        if (spec.min !== undefined && spec.min !== null) input.min = String(spec.min);
        if (spec.max !== undefined && spec.max !== null) input.max = String(spec.max);
        if (spec.default !== undefined && spec.default !== null) input.value = String(spec.default);
      } else {
        input = document.createElement("input");
        input.type = "text";
        if (spec.default !== undefined && spec.default !== null) input.value = String(spec.default);
      }
      input.id = id;
      input.dataset.param = name;
      input.dataset.type = String(spec.type || "");
      if (input.type === "checkbox") {
        field.append(input, label);
      } else {
        field.append(label, input);
      }
      box.appendChild(field);
    }
  }

  /** The parameter inputs as a JSON-able object; throws on an invalid value. */
  function collectParams() {
    const out = {};
    for (const input of $("params").querySelectorAll("[data-param]")) {
      const name = input.dataset.param;
      const type = input.dataset.type;
      if (input.type === "checkbox") {
        out[name] = input.checked;
        continue;
      }
      const raw = String(input.value).trim();
      if (input.type === "number" && !input.checkValidity()) {
        input.focus();
        const lim = [input.min && `at least ${input.min}`, input.max && `at most ${input.max}`]
          .filter(Boolean).join(" and ");
        throw new Error(`The parameter "${name}" must be a number${lim ? " " + lim : ""}.`);
      }
      if (raw === "") continue;
      if (isIntType(type)) out[name] = parseInt(raw, 10);
      else if (isFloatType(type)) out[name] = parseFloat(raw);
      else out[name] = raw;
    }
    return out;
  }

  // ---------------------------------------------------------------- the photo

  function setupPhoto() {
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

  async function classify() {
    if (!state.file) return;
    const list = $("top5");
    list.textContent = "";
    $("top-empty").hidden = false;
    $("top-empty").textContent = "Classifying…";
    const form = new FormData();
    form.append("image", state.file);
    form.append("top_k", "5");
    try {
      const res = await api("/v1/classify", { method: "POST", body: form });
      state.top = res.top || [];
      renderTop();
      if (!state.target && state.top.length) {
        setTarget(state.top[0].class, state.top[0].name);
      }
    } catch (err) {
      $("top-empty").textContent = "The photo could not be classified.";
      showError(err);
    }
    updateButtons();
  }

  function renderTop() {
    const list = $("top5");
    list.textContent = "";
    $("top-empty").hidden = state.top.length > 0;
    for (const t of state.top) {
      const li = document.createElement("li");
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "bar";
      btn.dataset.class = String(t.class);
      btn.setAttribute("aria-pressed", "false");
      const pct = Math.max(0, Math.min(100, 100 * Number(t.prob || 0)));
      const name = document.createElement("span");
      name.className = "bar-name";
      name.textContent = t.name;
      const track = document.createElement("span");
      track.className = "bar-track";
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = `${pct.toFixed(1)}%`;
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = `${pct.toFixed(1)}%`;
      btn.append(name, track, value);
      btn.title = `Explain “${t.name}” (class ${t.class})`;
      btn.addEventListener("click", () => setTarget(t.class, t.name));
      li.appendChild(btn);
      list.appendChild(li);
    }
    markTop();
  }

  function markTop() {
    for (const btn of $("top5").querySelectorAll("button.bar")) {
      const on = state.target && Number(btn.dataset.class) === state.target.index;
      btn.setAttribute("aria-pressed", on ? "true" : "false");
    }
  }

  function setTarget(index, name) {
    state.target = { index: Number(index), name };
    $("class-input").value = name;
    $("class-hint").textContent = `class ${index}`;
    markTop();
    updateButtons();
  }

  function onClassTyped() {
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

  function updateButtons() {
    const ready = Boolean(state.file) && !state.busy && state.methods.length > 0;
    $("explain-btn").disabled = !ready;
    $("compare-btn").disabled = !ready;
  }

  // ---------------------------------------------------------------- explain

  function explainForm(method, params, localize) {
    const form = new FormData();
    form.append("image", state.file);
    form.append("method", method);
    form.append("target", targetValue());
    form.append("params", JSON.stringify(params));
    form.append("localize", localize ? "true" : "false");
    return form;
  }

  /** The class index, or else the typed text (the server resolves synonyms and says why not). */
  function targetValue() {
    return state.target ? String(state.target.index) : $("class-input").value.trim();
  }

  function targetLabel() {
    return state.target ? state.target.name : $("class-input").value.trim();
  }

  function requireTarget() {
    if (!state.file) throw new Error("Choose a photo first.");
    if (!targetValue()) {
      $("class-input").focus();
      throw new Error("Choose a class: click one of the top-5 or type a class name.");
    }
  }

  async function explain(ev) {
    if (ev) ev.preventDefault();
    if (state.busy) return;
    let params;
    try {
      requireTarget();
      params = collectParams();
    } catch (err) {
      showError(err);
      return;
    }
    const method = $("method-select").value;
    setBusy(true, `Explaining “${targetLabel()}” with ${method}…`);
    try {
      const res = await api("/v1/explain", {
        method: "POST",
        body: explainForm(method, params, true),
      });
      hideBanner();
      if (!state.target && res.target && res.target.class !== undefined) {
        setTarget(res.target.class, res.target.name);
      }
      await showResult(res);
      $("explain-status").textContent = res.timing_ms !== undefined
        ? `Done in ${Math.round(Number(totalMs(res.timing_ms)))} ms.` : "Done.";
    } catch (err) {
      $("explain-status").textContent = "";
      showError(err);
    } finally {
      setBusy(false);
    }
  }

  function totalMs(t) {
    if (typeof t === "number") return t;
    if (t && typeof t === "object") {
      if (typeof t.total === "number") return t.total;
      return Object.values(t).filter((v) => typeof v === "number").reduce((a, b) => a + b, 0);
    }
    return 0;
  }

  function setBusy(on, message) {
    state.busy = on;
    document.body.classList.toggle("busy", on);
    if (message !== undefined) $("explain-status").textContent = message;
    updateButtons();
  }

  function pngUrl(b64) {
    return b64 ? `data:image/png;base64,${b64}` : "";
  }

  async function showResult(res) {
    state.result = res;
    for (const u of state.objectUrls) URL.revokeObjectURL(u);
    state.objectUrls = [];

    const card = $("result-card");
    card.hidden = false;
    const target = res.target || {};
    $("result-meta").textContent = `${res.method || ""} · ${target.name || ""}` +
      (target.class !== undefined ? ` (class ${target.class})` : "");

    $("photo-img").src = state.photoUrl;
    const mapSrc = pngUrl(res.map && res.map.png);
    const overlaySrc = pngUrl(res.overlay_png);
    $("map-img").src = mapSrc;
    $("overlay-img").src = overlaySrc;
    $("overlay-layer").src = overlaySrc;
    applyOpacity();

    const mask = $("mask-layer");
    if (res.mask_png) {
      mask.src = pngUrl(res.mask_png);
      mask.hidden = !$("show-mask").checked;
    } else {
      mask.removeAttribute("src");
      mask.hidden = true;
    }
    $("show-mask").disabled = !res.mask_png;
    placeBox();

    // Downloads.
    const dlMap = $("dl-map");
    dlMap.href = mapSrc;
    dlMap.download = `${res.method || "map"}_${target.class ?? ""}.png`;
    const dlOverlay = $("dl-overlay");
    dlOverlay.href = overlaySrc;
    dlOverlay.download = `${res.method || "overlay"}_${target.class ?? ""}_overlay.png`;
    const json = new Blob([JSON.stringify(res, null, 2)], { type: "application/json" });
    const jsonUrl = URL.createObjectURL(json);
    state.objectUrls.push(jsonUrl);
    $("dl-json").href = jsonUrl;
    $("dl-json").download = `${res.method || "explanation"}_${target.class ?? ""}.json`;

    const dlNpy = $("dl-npy");
    dlNpy.hidden = true;
    dlNpy.removeAttribute("href");
    if (res.map && res.map.png) {
      try {
        const decoded = await decodeGreyPng(base64Bytes(res.map.png));
        const npyUrl = URL.createObjectURL(npyBlob(decoded.values, decoded.height, decoded.width));
        state.objectUrls.push(npyUrl);
        dlNpy.href = npyUrl;
        dlNpy.download = `${res.method || "map"}_${target.class ?? ""}.npy`;
        dlNpy.hidden = false;
      } catch (err) {
        // No faithful .npy from this PNG (an unexpected PNG kind): offer only the PNG.
        dlNpy.hidden = true;
      }
    }
  }

  function applyOpacity() {
    const v = Number($("opacity").value);
    $("overlay-layer").style.opacity = String(v / 100);
    $("opacity-out").textContent = `${v}%`;
  }

  function placeBox() {
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

  // ---------------------------------------------------------------- compare

  async function compare() {
    if (state.busy) return;
    try {
      requireTarget();
    } catch (err) {
      showError(err);
      return;
    }
    const methods = state.methods.slice();
    const card = $("compare-card");
    const grid = $("compare-grid");
    const progress = $("compare-progress");
    card.hidden = false;
    grid.textContent = "";
    progress.max = methods.length;
    progress.value = 0;
    setBusy(true, `Comparing ${methods.length} methods…`);
    const current = $("method-select").value;
    let currentParams = {};
    try { currentParams = collectParams(); } catch (e) { currentParams = {}; }
    let failures = 0;
    try {
      for (const m of methods) {
        const fig = document.createElement("figure");
        const cap = document.createElement("figcaption");
        cap.textContent = `${m.name}…`;
        fig.appendChild(cap);
        grid.appendChild(fig);
        try {
          const params = m.name === current ? currentParams : {};
          const res = await api("/v1/explain", {
            method: "POST",
            body: explainForm(m.name, params, false),
          });
          const img = document.createElement("img");
          img.src = pngUrl(res.map && res.map.png);
          img.alt = `${m.name} map`;
          fig.insertBefore(img, cap);
          const ms = res.timing_ms !== undefined ? ` · ${Math.round(totalMs(res.timing_ms))} ms` : "";
          cap.textContent = `${m.name}${ms}`;
        } catch (err) {
          failures += 1;
          cap.textContent = `${m.name}: failed`;
          const p = document.createElement("p");
          p.className = "error-text";
          p.textContent = err instanceof ApiError ? (err.detail || err.title) : String(err.message || err);
          fig.insertBefore(p, cap);
          if (err instanceof ApiError && err.status === 401) {
            showError(err);
            break;
          }
        }
        progress.value += 1;
      }
      $("explain-status").textContent = failures
        ? `Compared; ${failures} method(s) failed.` : "Compared.";
    } finally {
      setBusy(false);
    }
  }

  // ---------------------------------------------------------------- .npy from the 16-bit PNG

  function base64Bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  /** Decode a non-interlaced grey PNG (8 or 16 bit) to floats in [0, 1], exactly. */
  async function decodeGreyPng(bytes) {
    const sig = [137, 80, 78, 71, 13, 10, 26, 10];
    for (let i = 0; i < 8; i++) if (bytes[i] !== sig[i]) throw new Error("not a PNG");
    if (typeof DecompressionStream === "undefined") throw new Error("no DecompressionStream");
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let pos = 8;
    let width = 0, height = 0, depth = 0, colour = -1, interlace = 0;
    const idat = [];
    while (pos + 8 <= bytes.length) {
      const len = dv.getUint32(pos);
      const type = String.fromCharCode(bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]);
      const data = bytes.subarray(pos + 8, pos + 8 + len);
      if (type === "IHDR") {
        width = dv.getUint32(pos + 8);
        height = dv.getUint32(pos + 12);
        depth = bytes[pos + 16];
        colour = bytes[pos + 17];
        interlace = bytes[pos + 20];
      } else if (type === "IDAT") {
        idat.push(data);
      } else if (type === "IEND") {
        break;
      }
      pos += 12 + len;
    }
    if (colour !== 0 || interlace !== 0 || (depth !== 8 && depth !== 16) || !width || !height) {
      throw new Error(`unsupported PNG (colour ${colour}, depth ${depth}, interlace ${interlace})`);
    }
    const stream = new Blob(idat).stream().pipeThrough(new DecompressionStream("deflate"));
    const raw = new Uint8Array(await new Response(stream).arrayBuffer());
    const bpp = depth / 8;
    const stride = width * bpp;
    if (raw.length < height * (stride + 1)) throw new Error("truncated PNG");
    const values = new Float32Array(width * height);
    let prev = new Uint8Array(stride);
    let cur = new Uint8Array(stride);
    let p = 0;
    for (let y = 0; y < height; y++) {
      const filter = raw[p++];
      for (let i = 0; i < stride; i++) {
        const x = raw[p++];
        const a = i >= bpp ? cur[i - bpp] : 0;
        const b = prev[i];
        const c = i >= bpp ? prev[i - bpp] : 0;
        let v;
        switch (filter) {
          case 0: v = x; break;
          case 1: v = x + a; break;
          case 2: v = x + b; break;
          case 3: v = x + ((a + b) >> 1); break;
          case 4: {
            const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
            v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
            break;
          }
          default: throw new Error(`bad PNG filter ${filter}`);
        }
        cur[i] = v & 0xff;
      }
      const row = y * width;
      if (depth === 16) {
        for (let i = 0; i < width; i++) values[row + i] = ((cur[2 * i] << 8) | cur[2 * i + 1]) / 65535;
      } else {
        for (let i = 0; i < width; i++) values[row + i] = cur[i] / 255;
      }
      const t = prev; prev = cur; cur = t;
    }
    return { width, height, values };
  }

  /** A NumPy format 1.0 .npy of a float32 (height, width) array, little-endian, C order. */
  function npyBlob(values, height, width) {
    let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${height}, ${width}), }`;
    const pad = (64 - ((10 + header.length + 1) % 64)) % 64;
    header += " ".repeat(pad) + "\n";
    const buf = new ArrayBuffer(10 + header.length + 4 * values.length);
    const dv = new DataView(buf);
    const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0];
    magic.forEach((b, i) => dv.setUint8(i, b));
    dv.setUint16(8, header.length, true);
    for (let i = 0; i < header.length; i++) dv.setUint8(10 + i, header.charCodeAt(i));
    const off = 10 + header.length;
    for (let i = 0; i < values.length; i++) dv.setFloat32(off + 4 * i, values[i], true);
    return new Blob([buf], { type: "application/octet-stream" });
  }

  // ---------------------------------------------------------------- class models

  const TERMINAL = new Set(["done", "error", "failed", "cancelled", "canceled"]);

  // the panel whose job runs ("cm": class models, "un": units); its elements are prefixed so
  let jobPanel = "cm";

  /** Steps from an input: null for the library's default (empty), NaN when invalid. */
  function stepsOf(input) {
    if (input.value.trim() === "") return null;
    const steps = Number(input.value);
    return input.checkValidity() && Number.isInteger(steps) && steps >= 1 && steps <= 500
      ? steps : NaN;
  }

  async function makeClassModel(ev) {
    ev.preventDefault();
    const names = $("cm-classes").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (!names.length) {
      $("cm-classes").focus();
      showError(new Error("Type at least one class name."));
      return;
    }
    await runJob("cm", { classes: names, mode: $("cm-mode").value }, "The class model failed");
  }

  async function makeUnit(ev) {
    ev.preventDefault();
    const unit = $("un-unit").value.trim();
    if (!/^.+:\d+$/.test(unit)) {
      $("un-unit").focus();
      showError(new Error("Type a unit as layer:channel, e.g. blocks.5:17."));
      return;
    }
    await runJob("un", { unit }, "The visualisation failed");
  }

  async function runJob(panel, body, failure) {
    const stepsInput = $(`${panel}-steps`);
    const steps = stepsOf(stepsInput);
    if (Number.isNaN(steps)) {
      stepsInput.focus();
      showError(new Error("Steps must be empty (the default) or a whole number from 1 to 500."));
      return;
    }
    if (steps !== null) body.steps = steps;
    jobPanel = panel;
    stepClock = null;
    const btn = $(`${panel}-btn`);
    btn.disabled = true;
    $(`${panel}-images`).textContent = "";
    const progress = $(`${panel}-progress`);
    progress.max = steps || 1;
    progress.value = 0;
    $(`${panel}-progress-text`).textContent = "Starting…";
    $(`${panel}-progress-wrap`).hidden = false;
    try {
      const res = await postJson("/v1/classmodel", body);
      hideBanner();
      await watchJob(res.job);
      const job = await api(`/v1/jobs/${encodeURIComponent(res.job)}`);
      showProgress(job);
      renderJobImages(job);
      if (job.state !== "done") {
        showError(new ApiError(0, failure, job.error || `The job ended as "${job.state}".`));
      }
    } catch (err) {
      $(`${panel}-progress-text`).textContent = "";
      showError(err);
    } finally {
      btn.disabled = false;
    }
  }

  let stepClock = null;  // [time of the first step seen, that step]: the time per step

  function showProgress(s) {
    const progress = $(`${jobPanel}-progress`);
    const total = Number(s.total) || 0;
    const step = Number(s.step) || 0;
    if (total > 0) progress.max = total;
    progress.value = Math.min(step, progress.max);
    let perStep = Number(s.seconds_per_step) || 0;
    if (!perStep && step > 0) {  // the events carry no time: measure it here
      if (!stepClock || step < stepClock[1]) stepClock = [performance.now(), step];
      else if (step > stepClock[1]) perStep = (performance.now() - stepClock[0]) / 1000 / (step - stepClock[1]);
    }
    const time = perStep ? ` · ${perStep < 10 ? perStep.toFixed(2) : perStep.toFixed(0)} s per step` : "";
    $(`${jobPanel}-progress-text`).textContent = `${s.state || ""} ${step} / ${total || "?"}${time}`.trim();
  }

  /** Resolve when the job reaches a terminal state, following its server-sent events. */
  function watchJob(id) {
    const url = `/v1/jobs/${encodeURIComponent(id)}/events`;
    if (token()) return watchWithFetch(url, id);  // EventSource cannot send the bearer token
    return new Promise((resolve, reject) => {
      let finished = false;
      const es = new EventSource(url);
      es.onmessage = (msg) => {
        let data;
        try { data = JSON.parse(msg.data); } catch (e) { return; }
        showProgress(data);
        if (TERMINAL.has(data.state)) {
          finished = true;
          es.close();
          resolve(data);
        }
      };
      es.onerror = () => {
        if (finished) return;
        // The stream broke (or ended without a last event): ask the job itself.
        es.close();
        pollJob(id).then(resolve, reject);
      };
    });
  }

  async function watchWithFetch(url, id) {
    const resp = await fetch(url, { headers: Object.assign({ Accept: "text/event-stream" }, authHeaders()) });
    if (!resp.ok) {
      const err = await problemOf(resp);
      if (resp.status === 401) askForToken();
      throw err;
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const chunk = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = chunk.split("\n").filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (!data) continue;
        let ev;
        try { ev = JSON.parse(data); } catch (e) { continue; }
        showProgress(ev);
        if (TERMINAL.has(ev.state)) {
          reader.cancel().catch(() => {});
          return ev;
        }
      }
    }
    return pollJob(id);
  }

  async function pollJob(id) {
    const deadline = Date.now() + 30 * 60 * 1000;
    while (Date.now() < deadline) {
      const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
      showProgress(job);
      if (TERMINAL.has(job.state)) return job;
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error("The class model is taking too long; try fewer steps.");
  }

  function renderJobImages(job) {
    const grid = $(`${jobPanel}-images`);
    grid.textContent = "";
    for (const im of job.images || []) {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = pngUrl(im.png);
      img.alt = `Class model of ${im.name}`;
      const cap = document.createElement("figcaption");
      cap.textContent = im.class !== undefined ? `${im.name} (class ${im.class})` : im.name;
      const a = document.createElement("a");
      a.href = img.src;
      a.download = `classmodel_${String(im.name).replace(/[^\w.-]+/g, "_")}.png`;
      a.textContent = "PNG";
      cap.append(" ", a);
      fig.append(img, cap);
      grid.appendChild(fig);
    }
    // the evolution: each class's image after each snapshot's step
    const evo = job.evolution || [];
    (job.images || []).forEach((im, i) => {
      if (!evo.length) return;
      const row = document.createElement("figure");
      row.className = "evolution";
      const strip = document.createElement("div");
      strip.className = "evolution-strip";
      for (const snap of evo) {
        const img = document.createElement("img");
        img.src = pngUrl(snap.png[i]);
        img.alt = `${im.name} after ${snap.step} steps`;
        img.title = `step ${snap.step}`;
        strip.appendChild(img);
      }
      const cap = document.createElement("figcaption");
      cap.textContent = `${im.name}: the evolution, after steps ${evo.map((s) => s.step).join(", ")}`;
      row.append(strip, cap);
      grid.appendChild(row);
    });
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    setupToken();
    setupTabs();
    setupPhoto();
    $("banner-close").addEventListener("click", hideBanner);
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && !$("banner").hidden) hideBanner();
    });
    $("method-select").addEventListener("change", renderParams);
    $("class-input").addEventListener("input", onClassTyped);
    $("class-input").addEventListener("change", onClassTyped);
    $("explain-form").addEventListener("submit", explain);
    $("compare-btn").addEventListener("click", compare);
    $("opacity").addEventListener("input", applyOpacity);
    $("opacity").addEventListener("change", applyOpacity);
    $("show-box").addEventListener("change", placeBox);
    $("show-mask").addEventListener("change", () => {
      $("mask-layer").hidden = !$("show-mask").checked || !$("mask-layer").getAttribute("src");
    });
    $("cm-form").addEventListener("submit", makeClassModel);
    $("un-form").addEventListener("submit", makeUnit);
    window.addEventListener("unhandledrejection", (ev) => {
      ev.preventDefault();
      showError(ev.reason);
    });
    applyOpacity();
    loadCatalogue();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
