// The charts of the stats page.
//
// The server puts each chart's labels and numbers in the data-chart
// attribute of its canvas, as {"kind": "daily" | "ranking", "labels": [...],
// "datasets": [{"label", "data", "line"?}], "stacked"?}. Chart.js (vendored
// in static/vendor) draws them on the canvas, so supporter names from Twitch
// are painted as text and never parsed as HTML.
"use strict";

// One colour for each group of event types on the watch page, and Other.
const PALETTE_SIZE = 12;

function cssValue(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name);
  return value.trim() || fallback;
}

function readPalette() {
  const colors = [];
  for (let n = 1; n <= PALETTE_SIZE; n += 1) {
    colors.push(cssValue(`--chart-${n}`, "#6c3fd1"));
  }
  return colors;
}

function countAxis(extra) {
  return { beginAtZero: true, ticks: { precision: 0 }, ...extra };
}

function dailyDataset(dataset, color) {
  if (!dataset.line) {
    return { label: dataset.label, data: dataset.data, backgroundColor: color };
  }
  return {
    type: "line",
    label: dataset.label,
    data: dataset.data,
    borderColor: color,
    backgroundColor: color,
    yAxisID: "total",
    pointRadius: 2,
  };
}

function dailyConfig(spec, palette) {
  const datasets = spec.datasets.map((dataset, index) =>
    dailyDataset(dataset, palette[index % palette.length]),
  );
  const scales = {
    x: { stacked: spec.stacked },
    y: countAxis({ stacked: spec.stacked }),
  };
  if (datasets.some((dataset) => dataset.yAxisID === "total")) {
    scales.total = countAxis({ position: "right", grid: { drawOnChartArea: false } });
  }
  return { type: "bar", data: { labels: spec.labels, datasets }, options: { scales } };
}

function rankingConfig(spec, palette) {
  const datasets = spec.datasets.map((dataset) => ({
    label: dataset.label,
    data: dataset.data,
    backgroundColor: palette[0],
  }));
  return {
    type: "bar",
    data: { labels: spec.labels, datasets },
    options: {
      indexAxis: "y",
      scales: { x: countAxis({}) },
      plugins: { legend: { display: false } },
    },
  };
}

function chartConfig(spec, palette) {
  const config =
    spec.kind === "ranking" ? rankingConfig(spec, palette) : dailyConfig(spec, palette);
  config.options.maintainAspectRatio = false;
  // People who ask the system for less motion get the charts without it.
  if (window.matchMedia("(prefers-reduced-motion: reduce)").matches) {
    config.options.animation = false;
  }
  return config;
}

function showMissing(canvas) {
  const panel = canvas.closest(".stats-panel");
  panel.querySelector(".stats-chart").hidden = true;
  panel.querySelector(".stats-chart-missing").hidden = false;
}

function drawCharts() {
  const canvases = document.querySelectorAll("canvas[data-chart]");
  if (typeof window.Chart === "undefined") {
    canvases.forEach(showMissing);
    return;
  }

  Chart.defaults.color = cssValue("--muted", "#5c5c66");
  Chart.defaults.borderColor = cssValue("--border", "#d9d9e0");
  const palette = readPalette();
  canvases.forEach((canvas) => {
    new Chart(canvas, chartConfig(JSON.parse(canvas.dataset.chart), palette));
    canvas.dataset.drawn = "true";
  });
}

drawCharts();
