/* A method's parameters as form inputs (from /v1/methods), and back to JSON. */

import { $, el } from "./dom.js";

const isIntType = (t) => /^(int|integer)$/i.test(String(t || ""));
const isFloatType = (t) => /^(float|number|double|real)$/i.test(String(t || ""));
const isBoolType = (t) => /^(bool|boolean)$/i.test(String(t || ""));
const given = (v) => v !== undefined && v !== null;

function inputFor(spec) {
  if (Array.isArray(spec.choices) && spec.choices.length) {
    const input = el("select", {},
      ...spec.choices.map((c) => el("option", { value: String(c), textContent: String(c) })));
    if (given(spec.default)) input.value = String(spec.default);
    return input;
  }
  if (isBoolType(spec.type)) return el("input", { type: "checkbox", checked: Boolean(spec.default) });
  const input = el("input", { type: "text" });
  if (isIntType(spec.type) || isFloatType(spec.type)) {
    input.type = "number";
    input.step = isIntType(spec.type) ? "1" : "any";
    if (given(spec.min)) input.min = String(spec.min);
    if (given(spec.max)) input.max = String(spec.max);
  }
  if (given(spec.default)) input.value = String(spec.default);
  return input;
}

/** The inputs of method ``m`` ({name, description, paper, params}) in the #params box. */
export function renderParams(m) {
  const box = $("params");
  for (const field of Array.from(box.querySelectorAll(".field"))) field.remove();
  $("method-desc").textContent = m ? [m.description, m.paper].filter(Boolean).join(" — ") : "";
  const params = (m && m.params) || {};
  const names = Object.keys(params);
  $("params-empty").hidden = names.length > 0;
  for (const name of names) {
    const spec = params[name] || {};
    const input = inputFor(spec);
    input.id = `param-${name}`;
    input.dataset.param = name;
    input.dataset.type = String(spec.type || "");
    const label = el("label", { htmlFor: input.id, textContent: name });
    const field = el("div", { className: "field" });
    if (input.type === "checkbox") {
      field.classList.add("inline");
      field.append(input, label);
    } else {
      field.append(label, input);
    }
    box.appendChild(field);
  }
}

/** The parameter inputs as a JSON-able object; throws on an invalid value. */
export function collectParams() {
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
