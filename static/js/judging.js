// Judging pages: show only the judge configuration fields that apply to the chosen provider.
(function () {
  "use strict";
  function applyProvider(select) {
    var form = select.form;
    if (!form) { return; }
    var fields = form.querySelectorAll("[data-provider]");
    for (var i = 0; i < fields.length; i++) {
      var wanted = fields[i].getAttribute("data-provider");
      fields[i].classList.toggle("hidden", wanted !== select.value);
    }
  }
  function init(root) {
    var selects = (root || document).querySelectorAll("select[data-provider-select]");
    for (var i = 0; i < selects.length; i++) { applyProvider(selects[i]); }
  }
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el && el.matches && el.matches("select[data-provider-select]")) { applyProvider(el); }
  });
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
