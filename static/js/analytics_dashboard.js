// Draws the analytics dashboard charts from the JSON the page embeds with json_script (CSP: no inline code).
(function () {
  "use strict";

  function draw() {
    var source = document.getElementById("analytics-charts");
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    // Axis text in the admin theme's colour (light or dark), as the page's CSS maps it. Only the text:
    // changing the default border colour would switch off Chart.js's own dataset colours.
    var root = document.getElementById("analytics-dashboard");
    if (root) {
      window.Chart.defaults.color = window.getComputedStyle(root).getPropertyValue("--muted").trim() || window.Chart.defaults.color;
    }
    var common = { responsive: true, maintainAspectRatio: false, animation: false };

    function chart(id, config) {
      var canvas = document.getElementById(id);
      if (canvas) {
        new window.Chart(canvas, config);
      }
    }

    chart("chart-trend", {
      type: "line",
      data: {
        labels: data.trend.labels,
        datasets: [
          { label: "answers", data: data.trend.queries, yAxisID: "y" },
          { label: "with a recommendation", data: data.trend.recommendations, yAxisID: "y" },
          { label: "clicked", data: data.trend.clicks, yAxisID: "y" },
          { label: "click-through (%)", data: data.trend.click_through_rate, yAxisID: "rate", borderDash: [4, 4] }
        ]
      },
      options: Object.assign({}, common, {
        spanGaps: false,
        scales: {
          y: { beginAtZero: true, position: "left" },
          rate: {
            beginAtZero: true,
            max: 1,
            position: "right",
            grid: { drawOnChartArea: false },
            ticks: { callback: function (value) { return Math.round(value * 100) + "%"; } }
          }
        }
      })
    });
    chart("chart-funnel", {
      type: "bar",
      data: { labels: data.funnel.labels, datasets: [{ label: "answer x runbook pairs", data: data.funnel.counts }] },
      options: Object.assign({}, common, { indexAxis: "y", scales: { x: { beginAtZero: true } } })
    });
    chart("chart-strategies", {
      type: "bar",
      data: {
        labels: data.strategies.labels,
        datasets: [{ label: "answers", data: data.strategies.audit_logs }]
      },
      options: Object.assign({}, common, { scales: { y: { beginAtZero: true } } })
    });
    chart("chart-ranks", {
      type: "bar",
      data: {
        labels: data.ranks.labels,
        datasets: [
          { label: "clicks", data: data.ranks.clicks },
          { label: "impressions", data: data.ranks.impressions }
        ]
      },
      options: Object.assign({}, common, { scales: { y: { beginAtZero: true }, x: { title: { display: true, text: "rank" } } } })
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
