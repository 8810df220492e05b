// Debugger page: live events of one source from /debugger/stream (server-sent events).
//
// Events are attacker-controlled (anyone with the public write key can send them), so the DOM
// is built with createElement and textContent only; nothing from an event reaches innerHTML or
// an attribute that is interpreted as markup or a URL.
(function () {
  "use strict";

  var STATUS = {
    accepted: ["Accepted", "on"],
    duplicate: ["Duplicate: already received, not sent again", "off"],
    rejected: ["Rejected: invalid event", "bad"],
    suppressed: ["Suppressed user: dropped", "warn"]
  };
  var DECISION = {
    delivered: ["Sent", "on"],
    held: ["Held: consent update, sent only if it changes the device's consent", "warn"],
    filtered: ["Filtered", "bad"]
  };
  var REASON = {
    FILTERED_BY_END_USER_CONSENT: "the end user did not consent",
    FILTERED_BY_INTEGRATIONS_OBJECT: "turned off in the event's integrations object",
    FILTERED_BY_RULES: "dropped by a destination filter",
    FILTERED_UNCHANGED_CONSENT: "consent update that changed nothing",
    DESTINATION_DISABLED: "destination turned off"
  };
  var ANNOUNCE_EVERY_MS = 5000;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function pill(label, kind) {
    return el("span", "pill " + kind, label);
  }

  function str(value) {
    return typeof value === "string" ? value : value === undefined || value === null ? "" : JSON.stringify(value);
  }

  // "track · Order Completed", "page · Home", "identify".
  function title(event) {
    var type = str(event && event.type) || "event";
    var name = event && (type === "track" ? event.event : event.name);
    return name !== undefined && name !== null && name !== "" ? type + " · " + str(name) : type;
  }

  function ids(data) {
    var event = data.event || {};
    var dl = el("dl", "debugger-ids");
    [["userId", event.userId], ["anonymousId", event.anonymousId], ["messageId", data.messageId || event.messageId]].forEach(function (pair) {
      if (pair[1] === undefined || pair[1] === null || pair[1] === "") return;
      dl.appendChild(el("dt", null, pair[0]));
      dl.appendChild(el("dd", "mono", str(pair[1])));
    });
    return dl;
  }

  function consent(data) {
    var wrap = el("div", "debugger-consent");
    wrap.appendChild(el("strong", null, "Consent: "));
    var c = data.consent;
    var prefs = c && typeof c === "object" ? (c.categoryPreferences || c.categoryPreference) : undefined;
    if (!c || typeof c !== "object" || Object.keys(c).length === 0) {
      wrap.appendChild(el("span", null, "no consent object on this event"));
    } else if (!prefs || typeof prefs !== "object") {
      wrap.appendChild(el("span", null, "consent object without categoryPreferences"));
    } else if (Object.keys(prefs).length === 0) {
      wrap.appendChild(el("span", null, "empty categoryPreferences: every category refused"));
    } else {
      var list = el("ul", "debugger-prefs");
      Object.keys(prefs).forEach(function (key) {
        var item = el("li");
        item.appendChild(el("code", null, key));
        item.appendChild(document.createTextNode(" "));
        item.appendChild(prefs[key] === true ? pill("Granted", "on") : pill("Not granted", "off"));
        list.appendChild(item);
      });
      wrap.appendChild(list);
    }
    return wrap;
  }

  function decisions(data) {
    var list = data.decisions || [];
    if (list.length === 0) {
      var why = data.status === "accepted" ? "No destinations." : "Not routed to any destination.";
      return el("p", "muted", why);
    }
    var table = el("table", "debugger-decisions");
    var head = el("thead");
    var row = el("tr");
    ["Destination", "Decision"].forEach(function (h) { var th = el("th", null, h); th.scope = "col"; row.appendChild(th); });
    head.appendChild(row);
    table.appendChild(head);
    var body = el("tbody");
    list.forEach(function (d) {
      var tr = el("tr");
      tr.appendChild(el("td", null, d.name || d.destinationId));
      var td = el("td");
      var kind = DECISION[d.decision] || [str(d.decision), "off"];
      td.appendChild(pill(kind[0], kind[1]));
      if (d.reason) {
        td.appendChild(document.createTextNode(" " + (REASON[d.reason] || "") + " "));
        td.appendChild(el("code", null, d.reason));
      }
      tr.appendChild(td);
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  function render(data) {
    var item = el("li", "debugger-event");
    var id = data.messageId || (data.event && data.event.messageId);
    if (id) item.setAttribute("data-message-id", str(id));
    var head = el("div", "spread");
    head.appendChild(el("strong", null, title(data.event)));
    var status = STATUS[data.status] || [str(data.status), "off"];
    var right = el("span", "row");
    right.appendChild(pill(status[0], status[1]));
    if (data.event && data.event.context && data.event.context.sluice && data.event.context.sluice.generated === true) {
      right.appendChild(pill("Generated by Sluice", "warn"));
    }
    var time = el("time", "muted", str(data.receivedAt));
    time.setAttribute("datetime", str(data.receivedAt));
    var d = new Date(str(data.receivedAt));
    if (!isNaN(d)) time.textContent = d.toLocaleTimeString();
    right.appendChild(time);
    head.appendChild(right);
    item.appendChild(head);
    if (data.rejection) {
      var p = el("p", "field-error");
      p.appendChild(document.createTextNode(str(data.rejection.message) + " "));
      p.appendChild(el("code", null, str(data.rejection.code)));
      item.appendChild(p);
    }
    item.appendChild(ids(data));
    item.appendChild(consent(data));
    item.appendChild(decisions(data));
    var details = el("details");
    details.appendChild(el("summary", null, "Raw JSON"));
    details.appendChild(el("pre", null, JSON.stringify(data.event, null, 2)));
    item.appendChild(details);
    return item;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("debugger");
    if (!root || typeof window.EventSource !== "function") return;
    var max = parseInt(root.getAttribute("data-max"), 10) || 200;
    var list = document.getElementById("debugger-events");
    var state = document.getElementById("debugger-state");
    var pausedNote = document.getElementById("debugger-paused");
    var missedNote = document.getElementById("debugger-missed");
    var announce = document.getElementById("debugger-announce");
    var button = document.getElementById("debugger-pause");

    var paused = false;
    var waiting = []; // events received while paused, oldest first
    var droppedWhilePaused = 0;
    var missed = 0; // reported by the server: this page fell behind
    var unannounced = 0;
    var lastAnnounce = 0;
    var timer = null;

    // `data-debugger-state` (connecting, live, lost, closed) lets tests and styles follow along.
    function setState(text, machine) {
      if (state.textContent !== text) state.textContent = text;
      if (machine) root.setAttribute("data-debugger-state", machine);
    }

    function show(data) {
      list.insertBefore(render(data), list.firstChild);
      while (list.children.length > max) list.removeChild(list.lastChild);
    }

    function updatePaused() {
      if (!paused) { pausedNote.hidden = true; return; }
      pausedNote.hidden = false;
      var text = "Paused. " + waiting.length + (waiting.length === 1 ? " new event is" : " new events are") + " waiting and will appear when you resume.";
      if (droppedWhilePaused > 0) text += " " + droppedWhilePaused + " older waiting " + (droppedWhilePaused === 1 ? "event was" : "events were") + " dropped (only the newest " + max + " are kept).";
      pausedNote.textContent = text;
    }

    // Announce new events politely, as a count, at most every few seconds.
    function flushAnnouncement() {
      timer = null;
      if (unannounced === 0) return;
      var n = unannounced;
      unannounced = 0;
      lastAnnounce = Date.now();
      announce.textContent = n + (n === 1 ? " new event" : " new events") + (paused ? " waiting (paused)." : ".");
    }
    function noteNew() {
      unannounced += 1;
      if (timer) return;
      var wait = Math.max(0, lastAnnounce + ANNOUNCE_EVERY_MS - Date.now());
      timer = setTimeout(flushAnnouncement, wait || 1000);
    }

    button.hidden = false;
    button.addEventListener("click", function () {
      paused = !paused;
      button.setAttribute("aria-pressed", paused ? "true" : "false");
      button.textContent = paused ? "Resume" : "Pause";
      if (!paused) {
        waiting.forEach(show);
        var n = waiting.length;
        waiting = [];
        droppedWhilePaused = 0;
        announce.textContent = "Resumed; " + n + (n === 1 ? " waiting event shown." : " waiting events shown.");
      } else {
        announce.textContent = "Paused. New events will wait until you resume.";
      }
      updatePaused();
    });

    setState("Connecting…", "connecting");
    var source = new EventSource(root.getAttribute("data-stream"));
    source.addEventListener("ready", function () {
      setState("Connected. Waiting for events; send one to this source and it appears here.", "live");
    });
    source.addEventListener("event", function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      setState("Connected.", "live");
      if (paused) {
        waiting.push(data);
        if (waiting.length > max) { waiting.shift(); droppedWhilePaused += 1; }
        updatePaused();
      } else {
        show(data);
      }
      noteNew();
    });
    source.addEventListener("dropped", function (message) {
      var n = 0;
      try { n = JSON.parse(message.data).missed || 0; } catch (e) { return; }
      missed += n;
      missedNote.hidden = false;
      missedNote.textContent = missed + (missed === 1 ? " event was" : " events were") + " not shown because events arrived faster than this page could take them. They were still processed normally.";
    });
    source.addEventListener("error", function () {
      var text = source.readyState === EventSource.CLOSED
        ? "Disconnected. Your session may have ended: reload the page to reconnect."
        : "Connection lost; reconnecting…";
      if (state.textContent !== text) announce.textContent = text;
      setState(text, source.readyState === EventSource.CLOSED ? "closed" : "lost");
    });
  });
})();
