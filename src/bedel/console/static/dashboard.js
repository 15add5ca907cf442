// Draws the dashboard's charts with Chart.js from the JSON block the page carries
// (<script type="application/json" id="dashboard-data">): the CSP allows no inline script.
// Each chart's sentence and table on the page say the same for people who cannot see it.
(function () {
  "use strict";

  var PALETTE = ["#0b5cad", "#c2410c", "#1e6b34", "#7c3aed", "#a4161a", "#4a525c", "#0e7490"];

  function colour(n) {
    return PALETTE[n % PALETTE.length];
  }

  function bar(spec) {
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: spec.series.map(function (series, n) {
          return { label: series.label, data: series.values, backgroundColor: colour(n) };
        })
      },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        scales: {
          x: { stacked: spec.stacked, beginAtZero: true },
          y: { stacked: spec.stacked, beginAtZero: true }
        },
        plugins: { legend: { display: spec.series.length > 1 } }
      }
    };
  }

  function doughnut(spec) {
    return {
      type: "doughnut",
      data: {
        labels: spec.labels,
        datasets: [{ label: spec.series[0].label, data: spec.series[0].values, backgroundColor: spec.labels.map(function (_, n) { return colour(n); }) }]
      },
      options: { plugins: { legend: { position: "bottom" } } }
    };
  }

  // Days of the week down, hours across: each bubble as large as the questions asked then.
  function matrix(spec) {
    var most = 1;
    spec.series.forEach(function (series) {
      series.values.forEach(function (value) { most = Math.max(most, value); });
    });
    var points = [];
    spec.series.forEach(function (series, day) {
      series.values.forEach(function (value, hour) {
        if (value > 0) {
          points.push({ x: hour, y: day, r: 2 + 12 * Math.sqrt(value / most), count: value });
        }
      });
    });
    return {
      type: "bubble",
      data: { datasets: [{ label: "", data: points, backgroundColor: "rgba(11, 92, 173, 0.6)" }] },
      options: {
        scales: {
          x: { min: -1, max: 24, ticks: { stepSize: 1, autoSkip: true, callback: function (value) { return spec.labels[value] || ""; } } },
          y: { min: -1, max: 7, reverse: true, ticks: { stepSize: 1, callback: function (value) { return spec.series[value] ? spec.series[value].label : ""; } } }
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (item) {
                var point = item.raw;
                return spec.series[point.y].label + " " + spec.labels[point.x] + ": " + point.count;
              }
            }
          }
        }
      }
    };
  }

  var BUILD = { bar: bar, doughnut: doughnut, matrix: matrix };

  function draw() {
    var block = document.getElementById("dashboard-data");
    if (!block || typeof Chart === "undefined") {
      return;
    }
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#1b1f24";
    JSON.parse(block.textContent).forEach(function (spec) {
      var canvas = document.getElementById("chart-" + spec.id);
      if (!canvas) {
        return;
      }
      var old = Chart.getChart(canvas);
      if (old) {
        old.destroy();
      }
      new Chart(canvas, BUILD[spec.kind](spec));
    });
  }

  // Loaded with the page, or run again by htmx after a boosted navigation.
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
