// Small behaviours that need script. Served as a file: the CSP forbids inline scripts.
(function () {
  "use strict";
  // Elements with data-autosubmit submit their form on change (filters, selects).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el && el.matches && el.matches("[data-autosubmit]") && el.form) {
      if (el.form.requestSubmit) { el.form.requestSubmit(); } else { el.form.submit(); }
    }
  });
})();
