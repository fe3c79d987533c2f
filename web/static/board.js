// Centre status board: poll /board/status.json every 2 s and reload when a registration or an
// alert changes (the server renders the page; this only keeps it fresh).
(function () {
  "use strict";
  var root = document.getElementById("board");
  if (!root || !window.fetch) return;
  var url = root.getAttribute("data-status-url");
  function current() {
    var state = {};
    document.querySelectorAll("#devices tr[data-device]").forEach(function (row) {
      state[row.getAttribute("data-device")] = row.classList.contains("registered");
    });
    return state;
  }
  var shownAlerts = document.querySelectorAll("#alerts .alert").length;
  var shownError = !!document.getElementById("ami-error");
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        var state = current(), changed = (!!data.ami_error) !== shownError || data.alerts.length !== shownAlerts;
        Object.keys(data.devices).forEach(function (user) {
          if (state[user] !== undefined && state[user] !== data.devices[user].registered) changed = true;
        });
        if (changed) window.location.reload();
      })
      .catch(function () {})
      .then(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
})();
