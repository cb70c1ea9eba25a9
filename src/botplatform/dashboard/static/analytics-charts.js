// The Analytics page's charts (uPlot, from our static folder): messages per period stacked
// by channel, and the first response time's median and p90. The numbers are in the page
// (a JSON block the server wrote), the same as its tables and CSV downloads.
(function () {
  "use strict";
  var COLOURS = ["#1a7f5a", "#2f6fb3", "#b3612f", "#7a4fb3", "#b32f5e", "#6b7a2f"];

  function seconds(periods) {
    return periods.map(function (p) { return Date.parse(p + "T00:00:00Z") / 1000; });
  }

  function width(box) {
    return Math.max(box.clientWidth || 600, 280);
  }

  function empty(box, text) {
    box.textContent = text;
    box.classList.add("is-empty");
    return null;
  }

  // Stacked areas: each series is drawn as the running sum of those before it.
  function messages(box, data) {
    var total = 0;
    data.series.forEach(function (s) { s.values.forEach(function (v) { total += v; }); });
    box.setAttribute("data-total", String(total));
    if (!total) return empty(box, "No messages in this range.");
    var running = data.periods.map(function () { return 0; });
    var stacked = data.series.map(function (s) {
      running = running.map(function (sum, i) { return sum + s.values[i]; });
      return running.slice();
    });
    var series = [{}].concat(data.series.map(function (s, i) {
      var colour = COLOURS[i % COLOURS.length];
      return { label: s.label, stroke: colour, fill: colour + "33", width: 2 };
    }).reverse());
    return new window.uPlot({
      width: width(box), height: 240,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max, 1)]; } } },
      axes: [{}, { label: "messages" }],
      series: series,
    }, [seconds(data.periods)].concat(stacked.reverse()), box);
  }

  function response(box, data) {
    var known = data.median.filter(function (v) { return v !== null; }).length;
    box.setAttribute("data-points", String(known));
    if (!known) return empty(box, "No answered conversations in this range.");
    return new window.uPlot({
      width: width(box), height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: "minutes" }],
      series: [{},
        { label: "median", stroke: "#2f6fb3", width: 2, spanGaps: true },
        { label: "p90", stroke: "#b3612f", width: 2, dash: [6, 4], spanGaps: true }],
    }, [seconds(data.periods), data.median, data.p90], box);
  }

  function start() {
    var source = document.getElementById("analytics-data");
    if (!source || !window.uPlot) return;
    var data = JSON.parse(source.textContent);
    var boxes = [document.getElementById("messages-chart"), document.getElementById("response-chart")];
    var charts = [messages(boxes[0], data.messages), response(boxes[1], data.response)];
    window.addEventListener("resize", function () {
      charts.forEach(function (chart, i) {
        if (chart) chart.setSize({ width: width(boxes[i]), height: chart.height });
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
