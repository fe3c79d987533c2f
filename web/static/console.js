/* The governor's console: live state by server-sent events (no inline script: CSP). */
(function () {
  "use strict";
  var list = document.getElementById("sessions");
  var labelsNode = document.getElementById("console-labels");
  if (!labelsNode) { return; }
  var labels = JSON.parse(labelsNode.textContent);
  var amiNode = document.getElementById("ami-state");
  var announce = document.getElementById("live-announce");
  var clockOffset = 0; // server time minus browser time, in ms

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function elapsed(since) {
    var seconds = Math.max(0, Math.floor((Date.now() + clockOffset - Date.parse(since)) / 1000));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + ":" + pad(m) : m) + ":" + pad(s);
  }

  function tick() {
    if (!list) { return; }
    list.querySelectorAll(".timer[data-since]").forEach(function (timer) {
      if (timer.dataset.since) {
        var text = elapsed(timer.dataset.since);
        timer.textContent = text;
      }
    });
  }

  function applySession(row) {
    var item = document.getElementById("session-" + row.id);
    if (!item) { return false; }
    var changed = item.dataset.phase !== row.phase;
    item.dataset.phase = row.phase;
    item.querySelector("[data-phase-text]").textContent = labels.phases[row.phase] || row.phase;
    var reg = item.querySelector(".reg");
    var regNow = row.registered ? "yes" : "no";
    if (reg.dataset.registered !== regNow) { changed = true; }
    reg.dataset.registered = regNow;
    reg.querySelector(".reg-text").textContent = row.registered ? labels.registered : labels.unregistered;
    item.querySelector(".ringing").hidden = !row.ringing;
    var timer = item.querySelector(".timer");
    timer.dataset.since = row.since || "";
    item.querySelector(".timer-row").hidden = !row.since;
    if (changed) {
      var name = item.querySelector(".citizen").textContent;
      announce.textContent = name + ": " + (labels.phases[row.phase] || row.phase) + " — " +
        (row.registered ? labels.registered : labels.unregistered);
    }
    return true;
  }

  function applyState(state) {
    if (state.now) { clockOffset = Date.parse(state.now) - Date.now(); }
    amiNode.dataset.ami = state.ami ? "up" : "down";
    amiNode.textContent = state.ami ? labels.ami_up : labels.ami_down;
    var unknown = false;
    state.sessions.forEach(function (row) { if (!applySession(row)) { unknown = true; } });
    if (list && state.sessions.length !== list.children.length) { unknown = true; }
    // (never while the page's video is on: a reload would end the call)
    if (unknown && !window.tawasulVideoActive && !document.querySelector("form:focus-within")) {
      window.location.reload(); // a session was added or removed today: take the new list
    }
    tick();
  }

  // An EventSource retries by itself after a dropped connection, but gives up for good on an
  // error status (the server's 503 when it serves its most streams): open it again, later.
  var retryMs = 2000;
  function openStream() {
    var source = new EventSource(list.dataset.stream);
    source.addEventListener("state", function (event) { retryMs = 2000; applyState(JSON.parse(event.data)); });
    source.addEventListener("error", function () {
      amiNode.dataset.ami = "unknown";
      amiNode.textContent = labels.stream_down;
      if (source.readyState === EventSource.CLOSED) {
        window.setTimeout(openStream, retryMs + Math.random() * 1000);
        retryMs = Math.min(retryMs * 2, 30000);
      }
    });
  }
  if (window.EventSource && list) { openStream(); }
  tick();
  window.setInterval(tick, 1000);
})();
