// Draws every <canvas data-chart="CONFIG_ID"> with the vendored Chart.js. CONFIG_ID names a
// <script type="application/json"> element holding a Chart.js configuration (type, data, options).
// JSON is data, not script, so the CSP's ban on inline script holds. Each chart's numbers are also
// on the page as a table: the canvas is a picture of them, never the only copy.
(function () {
  "use strict";
  function draw(root) {
    if (typeof window.Chart === "undefined") { return; }
    var canvases = (root || document).querySelectorAll("canvas[data-chart]");
    canvases.forEach(function (canvas) {
      if (canvas.dataset.chartDrawn === "1") { return; }
      var source = document.getElementById(canvas.dataset.chart);
      if (!source) { return; }
      var config;
      try { config = JSON.parse(source.textContent); } catch (e) { return; }
      config.options = config.options || {};
      if (config.options.animation === undefined) { config.options.animation = false; }
      if (config.options.maintainAspectRatio === undefined) { config.options.maintainAspectRatio = false; }
      new window.Chart(canvas, config);
      canvas.dataset.chartDrawn = "1";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });
})();
