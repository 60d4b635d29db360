/* The Units tab: the image that excites one unit of a layer most (feature visualisation). */

import { showError } from "./banner.js";
import { $ } from "./dom.js";
import { mountJobControls, runJob } from "./jobs.js";

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

export function setupUnits() {
  mountJobControls("un");
  $("un-form").addEventListener("submit", makeUnit);
}
