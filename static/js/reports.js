// Reports: the period form's quick ranges and the browser's time zone, and the charts (Chart.js, served from
// our own static files). Every chart repeats a table that is on the page already: without this script, or
// without Chart.js, nothing is lost but the pictures.
(function () {
  "use strict";

  var form = document.querySelector(".report-period");
  if (form) {
    var tz = form.elements.tz;
    var browserZone = "";
    try { browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* old browser */ }
    // An address without a zone (a link from the wallboard): show the period in the manager's own time zone,
    // keeping any dates it names. The default range is then the last 7 days there.
    if (tz && tz.dataset.tzGiven === "0" && browserZone && browserZone !== tz.value) {
      var url = new URL(window.location.href);
      url.searchParams.set("tz", browserZone);
      window.location.replace(url.toString());
      return;
    }
    form.querySelectorAll("[data-preset]").forEach(function (button) {
      button.addEventListener("click", function () {
        var days = parseInt(button.dataset.preset, 10);
        var end = form.elements.end.value ? new Date(form.elements.end.value + "T12:00:00Z") : new Date();
        var start = new Date(end.getTime() - (days - 1) * 86400000);
        form.elements.start.value = start.toISOString().slice(0, 10);
        form.elements.end.value = end.toISOString().slice(0, 10);
        form.submit();
      });
    });
  }

  var source = document.getElementById("report-charts");
  if (!source || typeof window.Chart === "undefined") { return; }
  var charts = JSON.parse(source.textContent);
  var palette = ["#1f5fbf", "#2e8b57", "#c77700", "#8a1f1f", "#6b4fbb", "#0f7c8a"];

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = charts[canvas.dataset.chart];
    if (!spec) { return; }
    var datasets = spec.datasets.map(function (d, i) {
      var color = d.dashed ? "#8a1f1f" : palette[i % palette.length];
      return {
        label: d.label, data: d.data, backgroundColor: color, borderColor: color, borderWidth: 2,
        borderDash: d.dashed ? [6, 4] : undefined, pointRadius: spec.type === "line" ? 3 : 0,
        spanGaps: true
      };
    });
    var valueAxis = { beginAtZero: true, ticks: {} };
    if (spec.percent_axis) { valueAxis.ticks.callback = function (v) { return v + " %"; }; }
    var scales = spec.horizontal ? { x: valueAxis } : { y: valueAxis };
    canvas.parentElement.dataset.drawn = "1";
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        indexAxis: spec.horizontal ? "y" : "x", responsive: true, maintainAspectRatio: false, animation: false,
        scales: scales, plugins: { legend: { display: datasets.length > 1, position: "bottom" } }
      }
    });
  });
}());
