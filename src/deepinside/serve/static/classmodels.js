/* The Class models tab: images made from scratch to score high for classes. */

import { showError } from "./banner.js";
import { $ } from "./dom.js";
import { mountJobControls, runJob } from "./jobs.js";

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

export function setupClassModels() {
  mountJobControls("cm");
  $("cm-form").addEventListener("submit", makeClassModel);
}
