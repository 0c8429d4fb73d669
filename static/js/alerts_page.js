/* The alerts page (docs/alerts-page.md):
 *  - clicks on its runbook cards are tracked like clicks on a chat answer (window.RunbookTracking,
 *    static/js/tracking.js) with source "alert". The listener sits on the polled element, which htmx
 *    keeps while it swaps the list inside it every 10 s;
 *  - a "Labels" disclosure the engineer opened stays open across those swaps. */
(function () {
  "use strict";

  function setup() {
    var live = document.getElementById("alerts-live");
    if (!live) return;
    if (window.RunbookTracking) window.RunbookTracking.bind(live, "alert");
    var open = [];
    live.addEventListener("htmx:beforeSwap", function () {
      open = Array.prototype.map.call(live.querySelectorAll("details[open][id]"), function (details) {
        return details.id;
      });
    });
    live.addEventListener("htmx:afterSwap", function () {
      open.forEach(function (id) {
        var details = document.getElementById(id);
        if (details && live.contains(details)) details.open = true;
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
