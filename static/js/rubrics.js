// Rubric editor: add, remove and reorder criteria and levels, then ask htmx to autosave.
// Field names carry positions (c-<i>-name, c-<i>-l-<j>-value), renumbered after each change.
(function () {
  "use strict";

  function form() { return document.getElementById("rubric-form"); }

  function renumber(container) {
    var criteria = container.querySelectorAll("[data-criterion]");
    criteria.forEach(function (crit, i) {
      var pos = crit.querySelector("[data-position]");
      if (pos) { pos.textContent = String(i + 1); }
      crit.querySelectorAll("[name]").forEach(function (el) {
        el.name = el.name.replace(/^c-(\d+|__I__)-/, "c-" + i + "-");
      });
      crit.querySelectorAll("[data-level]").forEach(function (level, j) {
        level.querySelectorAll("[name]").forEach(function (el) {
          el.name = el.name.replace(/-l-(\d+|__J__)-/, "-l-" + j + "-");
        });
      });
    });
  }

  function changed() {
    var f = form();
    renumber(f);
    // htmx listens for this on the form (autosave) and on the preview.
    f.dispatchEvent(new CustomEvent("rubric-changed", { bubbles: true }));
  }

  function fromTemplate(id) {
    var tpl = document.getElementById(id);
    return tpl.content.firstElementChild.cloneNode(true);
  }

  function addLevel(crit, value) {
    var levels = crit.querySelector("[data-levels]");
    var existing = levels.querySelectorAll("[data-level]");
    var level = fromTemplate("level-template");
    level.querySelectorAll("[name]").forEach(function (el) {
      el.name = el.name.replace("__I__", "0");
    });
    var last = existing.length ? parseInt(existing[existing.length - 1].querySelector(".level-value").value, 10) : NaN;
    level.querySelector(".level-value").value = String(value !== undefined ? value : (isNaN(last) ? 1 : last + 1));
    levels.insertBefore(level, levels.querySelector("[data-action=add-level]"));
    return level;
  }

  function act(button) {
    var f = form();
    var action = button.getAttribute("data-action");
    var crit = button.closest("[data-criterion]");
    var list = document.getElementById("criteria");
    if (action === "add-criterion") {
      var fresh = fromTemplate("criterion-template");
      list.appendChild(fresh);
      renumber(f);
      var name = fresh.querySelector("input[name$='-name']");
      if (name) { name.focus(); }
    } else if (action === "remove-criterion" && crit) {
      var label = (crit.querySelector("input[name$='-name']") || {}).value || "this criterion";
      if (!window.confirm("Remove " + label + "?")) { return; }
      crit.remove();
    } else if (action === "move-up" && crit && crit.previousElementSibling) {
      list.insertBefore(crit, crit.previousElementSibling);
    } else if (action === "move-down" && crit && crit.nextElementSibling) {
      list.insertBefore(crit.nextElementSibling, crit);
    } else if (action === "add-level" && crit) {
      addLevel(crit).querySelector("textarea").focus();
    } else if (action === "remove-level") {
      var level = button.closest("[data-level]");
      if (level) { level.remove(); }
    } else {
      return;
    }
    changed();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#rubric-form [data-action]");
    if (button) {
      event.preventDefault();
      act(button);
    }
  });

  // Switching a criterion to a scale shows its levels (1-5 to start with when it has none).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!el.matches || !el.matches("#rubric-form [data-role=criterion-type]")) { return; }
    var crit = el.closest("[data-criterion]");
    crit.setAttribute("data-type", el.value);
    if (el.value === "scale" && !crit.querySelector("[data-level]")) {
      for (var v = 1; v <= 5; v++) { addLevel(crit, v); }
      renumber(form());
    }
  });

  // A new list of rollouts for the preview: render the preview for the first one.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "preview-rollout") {
      target.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });

})();
