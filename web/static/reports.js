// Reports: draw the charts with Chart.js (web/static/vendor/chartjs) from /reports/data.json.
(function () {
  "use strict";
  var root = document.getElementById("reports");
  if (!root || !window.Chart) return;
  var label = function (name) { return root.getAttribute("data-label-" + name); };
  var rtl = document.documentElement.dir === "rtl";
  var common = {responsive: true, maintainAspectRatio: false, animation: false,
                plugins: {legend: {rtl: rtl}}, scales: {y: {beginAtZero: true, ticks: {precision: 0}}}};
  function bars(id, labels, sets) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    new window.Chart(canvas, {type: "bar", data: {labels: labels, datasets: sets}, options: common});
    canvas.setAttribute("data-drawn", "1");
  }
  fetch(root.getAttribute("data-url"), {credentials: "same-origin"})
    .then(function (r) { return r.json(); })
    .then(function (data) {
      bars("chart-days", data.days.map(function (d) { return d.day; }), [
        {label: label("held"), data: data.days.map(function (d) { return d.held; }), backgroundColor: "#1f6f50"},
        {label: label("noshow"), data: data.days.map(function (d) { return d.no_shows; }), backgroundColor: "#b5542f"}]);
      bars("chart-weeks", data.weeks.map(function (w) { return w.week; }), [
        {label: label("held"), data: data.weeks.map(function (w) { return w.held; }), backgroundColor: "#1f6f50"},
        {label: label("noshow"), data: data.weeks.map(function (w) { return w.no_shows; }), backgroundColor: "#b5542f"}]);
      var statuses = [], categories = [];
      data.complaints.forEach(function (c) {
        if (categories.indexOf(c.category || "—") < 0) categories.push(c.category || "—");
        if (statuses.indexOf(c.status) < 0) statuses.push(c.status);
      });
      var palette = ["#1f6f50", "#c29b2f", "#2f6fb5", "#7a7a7a", "#b5542f"];
      bars("chart-complaints", categories, statuses.map(function (s, i) {
        return {label: s, backgroundColor: palette[i % palette.length], data: categories.map(function (cat) {
          var hit = data.complaints.filter(function (c) { return (c.category || "—") === cat && c.status === s; })[0];
          return hit ? hit.count : 0; })};
      }));
      root.setAttribute("data-ready", "1");
    })
    .catch(function () { root.setAttribute("data-ready", "error"); });
})();
