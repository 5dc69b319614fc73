// The officials' dashboard charts: series from the page's #chart-data (official_selectors.chart_figures).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const labels = JSON.parse(document.getElementById("chart-labels").textContent);
  const colours = ["#ba2121", "#f0a000", "#0b6e4f", "#417690", "#7a4fa0", "#888888"];

  function draw(id, type, xLabels, datasets, options) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: type,
      data: {
        labels: xLabels,
        datasets: datasets.map(function (set, index) {
          return Object.assign({ backgroundColor: colours[index % colours.length], borderColor: colours[index % colours.length] }, set);
        }),
      },
      options: Object.assign({ responsive: true, animation: false, plugins: { legend: { position: "bottom" } } }, options || {}),
    });
  }

  const stacked = { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } };
  draw("chart-notifications", "bar", data.days, [
    { label: labels.high, data: data.notifications.high },
    { label: labels.low, data: data.notifications.low },
  ], stacked);
  draw("chart-cases", "bar", data.days, [
    { label: labels.published, data: data.cases.published },
    { label: labels.withdrawn, data: data.cases.withdrawn },
  ]);
  draw("chart-push", "line", data.hours, data.push.map(function (series) {
    return { label: series.kind + " · " + labels[series.outcome], data: series.counts, fill: false };
  }));
  draw("chart-lag", "bar", data.lag.cases, [{ label: labels.lag, data: data.lag.seconds }]);
  draw("chart-uploads", "bar", data.hours, [
    { label: labels.uploads, data: data.uploads.uploads, yAxisID: "y" },
    { label: labels.upload_tokens, data: data.uploads.tokens, yAxisID: "y1", type: "line", fill: false },
  ], { scales: { y: { beginAtZero: true, position: "left" }, y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } });
  draw("chart-upload-lag", "line", data.hours, [
    { label: labels.lag_mean, data: data.uploads.lag_mean_seconds, fill: false },
    { label: labels.lag_max, data: data.uploads.lag_max_seconds, fill: false },
  ], { scales: { y: { beginAtZero: true } } });
  draw("chart-tokens", "bar", data.tokens.dates, [
    { label: data.tokens.estimate ? labels.tokens_estimate : labels.tokens, data: data.tokens.counts },
  ]);
})();
