/* deepinside serve: the page. ES modules, no build step, no third-party code; one idea a
 * module. The HTTP API is described in docs/serve.md. */

import { setupBanner } from "./banner.js";
import { loadCatalogue, matchReduce, showMethod } from "./catalogue.js";
import { setupClassModels } from "./classmodels.js";
import { compare } from "./compare.js";
import { $ } from "./dom.js";
import { explain } from "./explain.js";
import { setupHover } from "./hover.js";
import { classify, setupPhoto } from "./photo.js";
import { setupResult } from "./result.js";
import { state } from "./state.js";
import { setupTabs } from "./tabs.js";
import { onClassTyped } from "./target.js";
import { setupToken } from "./token.js";
import { setupUnits } from "./units.js";

function afterCatalogue() {
  if (state.file && !state.top.length) classify();
}

setupBanner();
setupToken(() => {
  if (!state.loaded) loadCatalogue(afterCatalogue);
  else if (state.file && !state.top.length) classify();
});
setupTabs();
setupPhoto();
setupResult();
setupHover();
setupClassModels();
setupUnits();
$("method-select").addEventListener("change", showMethod);
$("sign-select").addEventListener("change", matchReduce);
$("class-input").addEventListener("input", onClassTyped);
$("class-input").addEventListener("change", onClassTyped);
$("explain-form").addEventListener("submit", explain);
$("compare-btn").addEventListener("click", compare);
loadCatalogue(afterCatalogue);
