// Reverse ETL model page: live progress of a running sync. Each run row with
// data-progress="/retl/runs/<id>/progress" is refreshed every second from the run's JSON until
// the run ends. Without this file the page still works: reloading shows the current numbers.
//
// Values from the run (error messages contain warehouse data) are written with textContent
// only.
(function () {
  "use strict";

  var EVERY_MS = 1000;
  var COUNTERS = ["extracted", "added", "updated", "deleted", "filteredByConsent", "queued", "failed"];
  var STATUS = {
    running: ["warn", "Running"],
    succeeded: ["on", "Succeeded"],
    partial: ["warn", "Partly failed"],
    failed: ["bad", "Failed"],
    interrupted: ["off", "Interrupted"]
  };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function field(row, name) {
    return row.querySelector('[data-field="' + name + '"]');
  }

  function replace(cell, nodes) {
    while (cell.firstChild) cell.removeChild(cell.firstChild);
    nodes.forEach(function (n) { cell.appendChild(n); });
  }

  function time(iso) {
    var t = el("time", null, iso);
    t.setAttribute("datetime", iso);
    var d = new Date(iso);
    if (!isNaN(d)) { t.title = iso; t.textContent = d.toLocaleString(); }
    return t;
  }

  function errors(run) {
    var nodes = [];
    if (run.error) nodes.push(el("p", "field-error", run.error));
    var sampled = run.errors || [];
    if (sampled.length) {
      var details = el("details");
      details.appendChild(el("summary", null, sampled.length + " sampled error" + (sampled.length === 1 ? "" : "s")));
      var list = el("ul", "plain");
      sampled.forEach(function (e) {
        var where = [];
        if (e.row !== undefined && e.row !== null) where.push("Row " + e.row);
        if (e.recordId !== undefined && e.recordId !== null) where.push("id " + e.recordId);
        var item = el("li", null, (where.length ? where.join(", ") + ": " : "") + e.message + " ");
        item.appendChild(el("span", "muted", "(" + e.code + ")"));
        list.appendChild(item);
      });
      details.appendChild(list);
      nodes.push(details);
    }
    (run.warnings || []).forEach(function (w) { nodes.push(el("p", "muted", w)); });
    if (!nodes.length) nodes.push(el("span", "muted", "None"));
    return nodes;
  }

  function update(row, run) {
    COUNTERS.forEach(function (name) {
      var cell = field(row, name);
      if (cell && run[name] !== undefined) cell.textContent = String(run[name]);
    });
    var status = STATUS[run.status] || ["off", run.status];
    var statusNodes = [el("span", "pill " + status[0], status[1])];
    if (run.status === "running" && run.phase) {
      statusNodes.push(document.createTextNode(" "));
      statusNodes.push(el("span", "muted", run.phase));
    }
    replace(field(row, "status"), statusNodes);
    if (run.finishedAt) replace(field(row, "finishedAt"), [time(run.finishedAt)]);
    replace(field(row, "errors"), errors(run));
  }

  function finished(run) {
    var banner = document.getElementById("sync-running");
    var status = STATUS[run.status] || ["off", run.status];
    if (banner) {
      banner.textContent = "The sync has ended: " + status[1].toLowerCase() + ". " +
        run.queued + " records queued, " + run.filteredByConsent + " filtered by consent, " + run.failed + " failed.";
    }
    var button = document.getElementById("sync-now");
    if (button && button.hasAttribute("data-enable-after-run")) {
      button.disabled = false;
      button.removeAttribute("aria-describedby");
      var reason = document.getElementById("sync-reason");
      if (reason) reason.hidden = true;
    }
  }

  function follow(row) {
    var url = row.getAttribute("data-progress");
    var failures = 0;
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          var type = response.headers.get("content-type") || "";
          if (!response.ok || type.indexOf("application/json") !== 0) throw new Error("status " + response.status);
          return response.json();
        })
        .then(function (run) {
          failures = 0;
          update(row, run);
          if (run.status === "running") {
            setTimeout(poll, EVERY_MS);
          } else {
            row.removeAttribute("data-progress");
            finished(run);
          }
        })
        .catch(function () {
          // Signed out, or the server is restarting: try a few times, then leave the page as it
          // is (a reload shows the current numbers).
          failures += 1;
          if (failures < 5) setTimeout(poll, EVERY_MS * failures);
        });
    }
    setTimeout(poll, EVERY_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("tr[data-progress]").forEach(follow);
  });
})();
