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

  // Failed htmx requests are never silent. A 4xx answer with a fragment is shown where the server
  // put it (a form with its problems, or #messages); a 5xx, a 4xx without a fragment, a network
  // error or a timeout shows the alert region of base.html, and whatever the request was meant to
  // replace is marked "not updated" so an old list never passes for the result.
  var lastSource = null;

  function region() { return document.getElementById("request-error"); }

  function serverMessage(xhr) {
    // Our error pages carry their sentence in [data-testid=error-message] p; read text only.
    var body = xhr && typeof xhr.responseText === "string" ? xhr.responseText : "";
    if (!body || body.indexOf("error-message") < 0) { return ""; }
    var doc = new DOMParser().parseFromString(body, "text/html");
    var p = doc.querySelector("[data-testid=error-message] p");
    return p ? p.textContent.trim().slice(0, 300) : "";
  }

  function markStale(target, detail) {
    // Only a GET shows a result (a list, a filter); a form that failed still holds what was typed.
    var verb = detail && detail.requestConfig && detail.requestConfig.verb;
    if (verb && verb !== "get") { return; }
    if (!target || target === document.body || target.id === "messages") { return; }
    target.classList.add("stale");
    target.setAttribute("data-stale", "true");
  }

  function showError(detail, sentence) {
    var box = region();
    if (!box) { return; }
    var text = box.querySelector("[data-request-error-text]");
    text.textContent = sentence;
    box.hidden = false;
    lastSource = detail ? detail.elt : null;
    markStale(originalTarget(detail), detail);
  }

  function originalTarget(detail) {
    // Where the request meant to swap (an error fragment may have been retargeted to #messages).
    if (!detail) { return null; }
    return (detail.requestConfig && detail.requestConfig.target) || detail.target || null;
  }

  function hideError() {
    var box = region();
    if (box) { box.hidden = true; }
    lastSource = null;
  }

  function hasFragment(xhr) {
    return !!(xhr && xhr.responseText && xhr.responseText.trim());
  }

  document.addEventListener("htmx:responseError", function (event) {
    var detail = event.detail || {};
    var xhr = detail.xhr || {};
    var status = xhr.status || 0;
    if (xhr.getResponseHeader && xhr.getResponseHeader("HX-Redirect")) { return; }
    if (status >= 400 && status < 500 && hasFragment(xhr)) {
      // The problems are shown; what the request was meant to replace still shows the old state.
      if (xhr.getResponseHeader("HX-Retarget")) { markStale(originalTarget(detail), detail); }
      return;
    }
    var said = serverMessage(xhr);
    var sentence;
    if (status >= 500) {
      sentence = (said || "Something went wrong on the server.") +
        " (error " + status + "). This part of the page was not updated; try again.";
    } else {
      sentence = (said || "The server refused the request") + " (error " + status + ").";
    }
    showError(detail, sentence);
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    // A 4xx with an empty body would blank its target: keep the page and say what happened.
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.status >= 400 && !hasFragment(xhr) && !xhr.getResponseHeader("HX-Redirect")) {
      event.detail.shouldSwap = false;
    }
  });

  document.addEventListener("htmx:sendError", function (event) {
    showError(event.detail, "The server could not be reached. Check your connection and try again; this part of the page was not updated.");
  });

  document.addEventListener("htmx:timeout", function (event) {
    showError(event.detail, "The server took too long to answer. This part of the page was not updated; try again.");
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var detail = event.detail || {};
    if (detail.successful && lastSource && detail.elt === lastSource) { hideError(); }
  });

  // An error fragment swapped into #messages may be far above the button that caused it.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "messages" && target.querySelector("[role=alert]")) {
      target.scrollIntoView({ block: "nearest" });
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-dismiss-request-error]") : null;
    if (button) { hideError(); }
  });
})();
