// The status pages' script: it refreshes the parts of the page marked
// data-live once a second by fetching the page again (the server renders
// it; this script renders nothing), and runs the check. The page shows
// its data without it.
"use strict";
(function () {
  // Mutating calls carry this header: a cross-site form cannot set it,
  // and a cross-site script cannot send it without a CORS preflight that
  // the admin listener never allows.
  var REQUEST_HEADER = "X-Oxbroker-Request";
  var busy = false;

  function refresh() {
    if (busy || document.hidden) return Promise.resolve();
    busy = true;
    return fetch(location.pathname + location.search, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          var fresh = doc.getElementById(old.id);
          if (!fresh) return;
          // Keep open what the reader opened.
          old.querySelectorAll("details[open][id]").forEach(function (d) {
            var f = fresh.querySelector("#" + CSS.escape(d.id));
            if (f) f.open = true;
          });
          old.replaceWith(document.importNode(fresh, true));
        });
        document.body.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* the next tick tries again */ })
      .finally(function () { busy = false; });
  }

  function runCheck(button, state) {
    button.disabled = true;
    state.textContent = "Running the checks…";
    fetch("/api/check", { method: "POST", headers: { [REQUEST_HEADER]: "check" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("the agent answered " + r.status);
        return r.json();
      })
      .then(function (rep) {
        state.textContent = rep.ok ? "Done: all checks passed." : "Done: a check failed; see below.";
        return refresh();
      })
      .catch(function (e) { state.textContent = "The check could not run: " + e.message; })
      .finally(function () { button.disabled = false; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("run-check");
    if (button) {
      button.hidden = false;
      button.addEventListener("click", function () { runCheck(button, document.getElementById("check-state")); });
    }
    var filter = document.getElementById("filter");
    if (filter) {
      filter.querySelectorAll("select").forEach(function (s) {
        s.addEventListener("change", function () { filter.submit(); });
      });
    }
    setInterval(refresh, 1000);
  });
})();
