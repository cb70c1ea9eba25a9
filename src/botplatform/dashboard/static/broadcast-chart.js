// The broadcast page's chart of sends per second (uPlot, from our static folder). It reads
// the page's `rate` JSON and reads it again every 2 s while the broadcast can still change.
(function () {
  "use strict";
  var FINAL = { completed: true, cancelled: true, failed: true };

  function start() {
    var box = document.getElementById("send-chart");
    if (!box || !window.uPlot) return;
    var chart = null;

    function width() {
      return Math.max(box.clientWidth || 600, 300);
    }

    function draw(answer) {
      var data = [answer.t, answer.n];
      box.setAttribute("data-points", String(answer.t.length));
      box.setAttribute("data-total", String(answer.n.reduce(function (a, b) { return a + b; }, 0)));
      if (chart) {
        chart.setData(data);
        return;
      }
      if (!answer.t.length) {
        box.textContent = "No sends yet.";
        box.classList.add("is-empty");
        return;
      }
      box.textContent = "";
      box.classList.remove("is-empty");
      chart = new window.uPlot({
        width: width(),
        height: 220,
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max, 1)]; } } },
        legend: { show: false },
        // Whole seconds on the time axis (no sub-second ticks for a short broadcast).
        axes: [{ incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600] },
               { label: "messages / s" }],
        series: [{}, { label: "sent", stroke: "#1a7f5a", fill: "rgba(26,127,90,0.15)", width: 2 }],
      }, data, box);
    }

    function load() {
      fetch(box.getAttribute("data-src"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) {
          if (!answer) return;
          draw(answer);
          if (!FINAL[answer.status]) window.setTimeout(load, 2000);
        });
    }

    load();
    window.addEventListener("resize", function () {
      if (chart) chart.setSize({ width: width(), height: 220 });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
