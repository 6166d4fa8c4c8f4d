// The annotation view: keyboard shortcuts, drafts saved while typing (and kept in this browser
// until the server has them), restored after a reload, and a submit that never loses the input.
(function () {
  "use strict";

  var help = document.getElementById("shortcut-help");

  function toggleHelp() {
    if (help) { help.classList.toggle("hidden"); }
  }

  function closest(el, selector) {
    return el && el.closest ? el.closest(selector) : null;
  }

  document.addEventListener("click", function (event) {
    if (closest(event.target, "[data-action=help]")) { toggleHelp(); return; }
    // An excerpt in the response jumps to where it is marked in the document.
    var jump = closest(event.target, "[data-jump]");
    if (!jump) { return; }
    var mark = document.querySelector('mark[data-marks~="' + jump.getAttribute("data-jump") + '"]');
    if (!mark) { return; }
    var folded = closest(mark, "details");
    if (folded) { folded.open = true; }
    mark.scrollIntoView({ block: "center" });
    mark.classList.add("mark-focus");
    setTimeout(function () { mark.classList.remove("mark-focus"); }, 1600);
  });

  var form = document.querySelector("form[data-label-form]");
  if (!form) { return; }

  var preference = form.hasAttribute("data-preference-form");
  var criteria = Array.prototype.slice.call(form.querySelectorAll("[data-criterion]"));
  var statusBox = form.querySelector("[data-draft-status]");
  var alertBox = document.querySelector("[data-label-alert]");
  var revisionField = form.querySelector("[data-revision]");
  var draftUrl = form.getAttribute("data-draft-url");
  var storageKey = form.getAttribute("data-storage-key");
  // A submitted label is changed only by submitting again (which keeps its history).
  var autosave = form.getAttribute("data-status") !== "submitted";
  var active = -1;
  var pending = Promise.resolve();
  var timer = null;
  var dirty = false;
  var submitting = false;
  var conflict = false;
  var goPrefix = false;

  function csrfToken() {
    var field = form.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  function snapshot() {
    var data = {};
    new FormData(form).forEach(function (value, name) {
      if (name !== "csrf_token" && name !== "revision") { data[name] = value; }
    });
    return data;
  }

  function same(a, b) {
    var keys = Object.keys(a).concat(Object.keys(b));
    for (var i = 0; i < keys.length; i++) {
      if ((a[keys[i]] || "") !== (b[keys[i]] || "")) { return false; }
    }
    return true;
  }

  function setStatus(text, isError) {
    if (!statusBox) { return; }
    statusBox.textContent = text;
    statusBox.classList.toggle("status-error", !!isError);
  }

  function showAlert(text) {
    if (!alertBox) { return; }
    alertBox.textContent = text;
    alertBox.classList.toggle("hidden", !text);
  }

  function now() {
    return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  // ---- this browser's copy: kept until the server has the same text ----

  function keepLocally() {
    try {
      localStorage.setItem(storageKey, JSON.stringify({ revision: revisionField.value, data: snapshot() }));
    } catch (e) { /* storage full or disabled: the server copy still works */ }
  }

  function forgetLocally() {
    try { localStorage.removeItem(storageKey); } catch (e) { /* nothing to forget */ }
  }

  function apply(data) {
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.name === "csrf_token" || el.name === "revision") { return; }
      if (el.type === "radio") { el.checked = data[el.name] === el.value; }
      else if (el.tagName === "TEXTAREA") { el.value = data[el.name] || ""; }
    });
  }

  function restore() {
    var raw = null;
    try { raw = localStorage.getItem(storageKey); } catch (e) { return; }
    if (!raw) { return; }
    var saved = null;
    try { saved = JSON.parse(raw); } catch (e) { forgetLocally(); return; }
    if (!saved || !saved.data || same(saved.data, snapshot())) { forgetLocally(); return; }
    if (String(saved.revision) !== String(revisionField.value)) {
      // The label was saved since (elsewhere): show the saved one, say what happened.
      showAlert("This browser held older unsaved text for this label; the newer saved version is shown.");
      forgetLocally();
      return;
    }
    apply(saved.data);
    dirty = true;
    setStatus("Restored your unsaved changes");
    if (autosave) { saveDraft(false); }
  }

  // ---- drafts on the server ----

  function parse(response) {
    return response.json().catch(function () { return {}; }).then(function (json) {
      return { ok: response.ok, status: response.status, json: json };
    });
  }

  function post(url, keepalive) {
    return fetch(url, {
      method: "POST",
      body: new FormData(form),
      headers: { "Accept": "application/json", "X-CSRF-Token": csrfToken() },
      credentials: "same-origin",
      keepalive: !!keepalive
    }).then(parse);
  }

  function describe(json, fallback) {
    var text = json.detail || fallback;
    if (json.problems && json.problems.length) {
      text += " " + json.problems.map(function (p) {
        // Criterion names read as written ("Follows_Instructions" → "Follows Instructions").
        var field = String(p.field || "").replace(/^critique:/, "critique of ").replace(/_/g, " ");
        return (field ? field + ": " : "") + p.message;
      }).join("; ");
    }
    return text;
  }

  function saveDraft(keepalive) {
    if (!autosave || conflict) { return pending; }
    clearTimeout(timer);
    timer = null;
    pending = pending.then(function () {
      if (!dirty || submitting) { return; }
      var sent = snapshot();
      dirty = false;
      setStatus("Saving…");
      return post(draftUrl, keepalive).then(function (result) {
        if (result.ok) {
          revisionField.value = result.json.revision;
          if (same(sent, snapshot())) { forgetLocally(); } else { keepLocally(); }
          setStatus("Draft saved " + now());
          showAlert("");
          return;
        }
        dirty = true;
        if (result.status === 409) { conflict = true; }
        showAlert(describe(result.json, "The draft could not be saved."));
        setStatus("Not saved — your text is kept in this browser", true);
      }).catch(function () {
        dirty = true;
        setStatus("Offline — your text is kept in this browser", true);
      });
    });
    return pending;
  }

  function changed() {
    dirty = true;
    keepLocally();
    if (!autosave) { return; }
    clearTimeout(timer);
    timer = setTimeout(function () { saveDraft(false); }, 700);
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  window.addEventListener("pagehide", function () {
    if (dirty && autosave && !submitting) { saveDraft(true); }
  });

  // ---- submitting ----

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var submitter = event.submitter;
    if (submitter && submitter.hasAttribute("formaction")) {
      dirty = true;
      saveDraft(false);
      return;
    }
    if (submitting) { return; }
    submitting = true;
    clearTimeout(timer);
    setStatus("Submitting…");
    // Wait for a draft save in flight, so the submission carries the newest revision.
    pending.then(function () { return post(form.action, false); }).then(function (result) {
      if (result.ok) {
        forgetLocally();
        autosave = false;
        dirty = false;
        setStatus("Submitted");
        window.location.assign(result.json.next_url);
        return;
      }
      submitting = false;
      if (result.status === 409) { conflict = true; }
      showAlert(describe(result.json, "The label was not submitted."));
      setStatus("Not submitted — your text is still here", true);
    }).catch(function () {
      submitting = false;
      setStatus("Could not reach the server — nothing is lost, try again", true);
    });
  });

  function submit() {
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }

  function go(url) {
    if (!url) { return; }
    saveDraft(true).then(function () { window.location.assign(url); });
  }

  // ---- keyboard ----

  function typing(el) {
    if (!el || !el.tagName) { return false; }
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") { return true; }
    return el.tagName === "INPUT" && !/^(radio|checkbox|button|submit|reset)$/.test(el.type);
  }

  // Scroll only the form's own panel (never the page, so its header stays in view), keeping the
  // criterion clear of the sticky submit bar.
  function reveal(el) {
    var panel = el.closest(".annotate-form");
    if (!panel) { return; }
    var bar = panel.querySelector(".formactions");
    var barHeight = bar ? bar.getBoundingClientRect().height : 0;
    var r = el.getBoundingClientRect();
    var p = panel.getBoundingClientRect();
    if (r.top < p.top) {
      panel.scrollTop -= p.top - r.top + 8;
    } else if (r.bottom > p.bottom - barHeight) {
      panel.scrollTop += Math.min(r.top - p.top - 8, r.bottom - (p.bottom - barHeight) + 8);
    }
  }

  function activate(index, quiet) {
    if (!criteria.length) { return; }
    active = Math.max(0, Math.min(criteria.length - 1, index));
    criteria.forEach(function (criterion, i) { criterion.classList.toggle("active", i === active); });
    if (!quiet) { reveal(criteria[active]); }
  }

  function choose(value) {
    var criterion = criteria[active];
    var radio = criterion && criterion.querySelector('input[type=radio][value="' + value + '"]');
    if (!radio) { return false; }
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    if (active < criteria.length - 1) { activate(active + 1); }
    return true;
  }

  function pick(value) {
    var radio = form.querySelector('input[name=choice][value="' + value + '"]');
    if (!radio) { return; }
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function focusField(selector) {
    var field = selector ? form.querySelector(selector) : null;
    if (field) { field.focus(); }
  }

  form.addEventListener("focusin", function (event) {
    var criterion = closest(event.target, "[data-criterion]");
    if (criterion) { activate(criteria.indexOf(criterion)); }
  });

  document.addEventListener("keydown", function (event) {
    var key = event.key;
    if ((event.ctrlKey || event.metaKey) && key === "Enter") {
      event.preventDefault();
      submit();
      return;
    }
    if (typing(event.target)) {
      if (key === "Escape") { event.target.blur(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var handled = true;
    if (key === "?") { toggleHelp(); }
    else if (key === "n" || key === "]") { go(form.getAttribute("data-next-url")); }
    else if (key === "[") { go(form.getAttribute("data-previous-url")); }
    else if (preference) {
      if (key === "1") { pick("left"); }
      else if (key === "2") { pick("right"); }
      else if (key === "t" || key === "0") { pick("tie"); }
      else if (key === "r") { focusField("[data-overall]"); }
      else { handled = false; }
    }
    else if (goPrefix) {
      goPrefix = false;
      if (/^[1-9]$/.test(key)) { activate(Number(key) - 1); } else { handled = false; }
    }
    else if (key === "g") { goPrefix = true; }
    else if (key === "j") { activate(active + 1); }
    else if (key === "k") { activate(active - 1); }
    else if (/^[0-9]$/.test(key)) {
      var current = criteria[active];
      if (current && current.getAttribute("data-type") === "scale" && choose(key)) { /* level chosen */ }
      else if (key !== "0" && Number(key) <= criteria.length) { activate(Number(key) - 1); }
      else { handled = false; }
    }
    else if (key === "p" || key === "f") {
      var criterion = criteria[active];
      if (criterion && criterion.getAttribute("data-type") === "boolean") {
        choose(key === "p" ? "pass" : "fail");
      } else { handled = false; }
    }
    else if ((key === "y" || key === "x" || key === "u") && form.querySelector("[data-deserved]")) {
      // Audit queues: did the sample deserve the reward it got in training?
      var answer = { y: "yes", x: "no", u: "unsure" }[key];
      var radio = form.querySelector('input[name=deserved][value="' + answer + '"]');
      if (radio) { radio.checked = true; radio.dispatchEvent(new Event("change", { bubbles: true })); }
    }
    else if (key === "c") { focusCritique(); }
    else if (key === "o") { focusField("[data-overall]"); }
    else { handled = false; }
    if (handled) { event.preventDefault(); }
  });

  function focusCritique() {
    var criterion = criteria[active];
    var box = criterion ? criterion.querySelector("[data-critique]") : null;
    if (box) { box.focus(); }
  }

  // Start on the first criterion still without a value.
  if (criteria.length) {
    var first = 0;
    for (var i = 0; i < criteria.length; i++) {
      if (!criteria[i].querySelector("input[type=radio]:checked")) { first = i; break; }
    }
    activate(first);
  }
  restore();
})();
