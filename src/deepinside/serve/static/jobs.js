/* Class-model and unit jobs: start one, follow its events, show its images and evolution.
 *
 * Each job panel ("cm": class models, "un": units) gets the same controls from the
 * <template id="job-controls">: its steps field and button go into the panel's form, its
 * progress and images after it; their ids are prefixed with the panel's ("cm-steps", ...).
 */

import { api, postJson, problemOf } from "./api.js";
import { hideBanner, showError } from "./banner.js";
import { $, el, pngUrl } from "./dom.js";
import { ApiError } from "./errors.js";
import { askForToken, authHeaders, token } from "./token.js";

const TERMINAL = new Set(["done", "error", "failed", "cancelled", "canceled"]);

/** Put the job controls in panel ``prefix``'s form (#{prefix}-form). */
export function mountJobControls(prefix) {
  const form = $(`${prefix}-form`);
  const part = $("job-controls").content.cloneNode(true);
  for (const node of part.querySelectorAll("[data-id]")) node.id = `${prefix}-${node.dataset.id}`;
  for (const node of part.querySelectorAll("[data-for]")) node.htmlFor = `${prefix}-${node.dataset.for}`;
  form.append(...part.querySelectorAll("[data-part=form]"));
  form.after(...part.querySelectorAll("[data-part=after]"));
}

/** Steps from an input: null for the library's default (empty), NaN when invalid. */
function stepsOf(input) {
  if (input.value.trim() === "") return null;
  const steps = Number(input.value);
  return input.checkValidity() && Number.isInteger(steps) && steps >= 1 && steps <= 500
    ? steps : NaN;
}

/** The progress of a job in one panel, with the time a step takes. */
class Progress {
  constructor(prefix) {
    this.prefix = prefix;
    this.clock = null;  // [time of the first step seen, that step]
  }

  show(s) {
    const progress = $(`${this.prefix}-progress`);
    const total = Number(s.total) || 0;
    const step = Number(s.step) || 0;
    if (total > 0) progress.max = total;
    progress.value = Math.min(step, progress.max);
    let perStep = Number(s.seconds_per_step) || 0;
    if (!perStep && step > 0) {  // the events carry no time: measure it here
      if (!this.clock || step < this.clock[1]) this.clock = [performance.now(), step];
      else if (step > this.clock[1]) perStep = (performance.now() - this.clock[0]) / 1000 / (step - this.clock[1]);
    }
    const time = perStep ? ` · ${perStep < 10 ? perStep.toFixed(2) : perStep.toFixed(0)} s per step` : "";
    $(`${this.prefix}-progress-text`).textContent = `${s.state || ""} ${step} / ${total || "?"}${time}`.trim();
  }
}

async function pollJob(id, progress) {
  const deadline = Date.now() + 30 * 60 * 1000;
  while (Date.now() < deadline) {
    const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
    progress.show(job);
    if (TERMINAL.has(job.state)) return job;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error("The job is taking too long; try fewer steps.");
}

async function watchWithFetch(url, id, progress) {
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
      progress.show(ev);
      if (TERMINAL.has(ev.state)) {
        reader.cancel().catch(() => {});
        return ev;
      }
    }
  }
  return pollJob(id, progress);
}

/** Resolve when the job reaches a terminal state, following its server-sent events. */
function watchJob(id, progress) {
  const url = `/v1/jobs/${encodeURIComponent(id)}/events`;
  if (token()) return watchWithFetch(url, id, progress);  // EventSource cannot send the token
  return new Promise((resolve, reject) => {
    let finished = false;
    const es = new EventSource(url);
    es.onmessage = (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch (e) { return; }
      progress.show(data);
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
      pollJob(id, progress).then(resolve, reject);
    };
  });
}

function imageFigure(im) {
  const img = el("img", { src: pngUrl(im.png), alt: `Visualisation of ${im.name}` });
  const a = el("a", { href: img.src, textContent: "PNG",
    download: `classmodel_${String(im.name).replace(/[^\w.-]+/g, "_")}.png` });
  const cap = el("figcaption", {},
    im.class !== undefined ? `${im.name} (class ${im.class})` : im.name, " ", a);
  return el("figure", {}, img, cap);
}

/** Each image's evolution: the image after each snapshot's step. */
function evolutionFigure(im, i, evo) {
  const strip = el("div", { className: "evolution-strip" }, ...evo.map((snap) => el("img", {
    src: pngUrl(snap.png[i]), alt: `${im.name} after ${snap.step} steps`, title: `step ${snap.step}`,
  })));
  const cap = el("figcaption", {
    textContent: `${im.name}: the evolution, after steps ${evo.map((s) => s.step).join(", ")}`,
  });
  return el("figure", { className: "evolution" }, strip, cap);
}

function renderJobImages(prefix, job) {
  const images = job.images || [];
  const evo = job.evolution || [];
  $(`${prefix}-images`).replaceChildren(...images.map(imageFigure),
    ...(evo.length ? images.map((im, i) => evolutionFigure(im, i, evo)) : []));
}

/** Start a job (POST /v1/classmodel ``body``) from panel ``prefix`` and show it to its end. */
export async function runJob(prefix, body, failure) {
  const stepsInput = $(`${prefix}-steps`);
  const steps = stepsOf(stepsInput);
  if (Number.isNaN(steps)) {
    stepsInput.focus();
    showError(new Error("Steps must be empty (the default) or a whole number from 1 to 500."));
    return;
  }
  if (steps !== null) body.steps = steps;
  const progress = new Progress(prefix);
  const btn = $(`${prefix}-btn`);
  btn.disabled = true;
  $(`${prefix}-images`).textContent = "";
  const bar = $(`${prefix}-progress`);
  bar.max = steps || 1;
  bar.value = 0;
  $(`${prefix}-progress-text`).textContent = "Starting…";
  $(`${prefix}-progress-wrap`).hidden = false;
  try {
    const res = await postJson("/v1/classmodel", body);
    hideBanner();
    await watchJob(res.job, progress);
    const job = await api(`/v1/jobs/${encodeURIComponent(res.job)}`);
    progress.show(job);
    renderJobImages(prefix, job);
    if (job.state !== "done") {
      showError(new ApiError(0, failure, job.error || `The job ended as "${job.state}".`));
    }
  } catch (err) {
    $(`${prefix}-progress-text`).textContent = "";
    showError(err);
  } finally {
    btn.disabled = false;
  }
}
