// Rollouts: upload progress for the import form, and "collapse / expand all" for JSON items.
// Served as a file (the CSP forbids inline scripts); works with htmx's multipart uploads.
(function () {
  "use strict";

  function uploadParts(form) {
    return {
      bar: form.querySelector(".uploadprogress"),
      state: form.querySelector(".uploadstate")
    };
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form.uploadform")) { return; }
    var parts = uploadParts(form);
    if (parts.bar) { parts.bar.value = 0; parts.bar.classList.remove("hidden"); }
    if (parts.state) { parts.state.textContent = "Uploading…"; }
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form.uploadform")) { return; }
    var detail = event.detail || {};
    if (!detail.lengthComputable || !detail.total) { return; }
    var percent = Math.round((detail.loaded / detail.total) * 100);
    var parts = uploadParts(form);
    if (parts.bar) { parts.bar.value = percent; }
    if (parts.state) {
      parts.state.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Uploaded; checking the file…";
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form.uploadform")) { return; }
    if (!event.detail || !event.detail.successful) {
      var parts = uploadParts(form);
      if (parts.bar) { parts.bar.classList.add("hidden"); }
      if (parts.state) { parts.state.textContent = ""; }
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-toggle-details]") : null;
    if (!button) { return; }
    var container = document.querySelector(button.getAttribute("data-toggle-details"));
    if (!container) { return; }
    var items = container.querySelectorAll("details");
    var anyOpen = Array.prototype.some.call(items, function (d) { return d.open; });
    Array.prototype.forEach.call(items, function (d) { d.open = !anyOpen; });
  });
})();
