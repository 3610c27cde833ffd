/* jobqueue dashboard: two small SVG charts (stacked bars, a line with gaps), no library.
 * Exposes window.JobqueueCharts.{stackedBars, line}. Colours come from dashboard.css classes. */
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const HEIGHT = 200;
  const MIN_WIDTH = 260;
  const PAD = { top: 12, right: 12, bottom: 28, left: 40 };

  function svgEl(name, attrs, parent) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attrs || {})) {
      node.setAttribute(key, String(value));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  /* The smallest 2, 4, 6 or 10 times a power of ten that is >= value (at least 2): the scale's
   * top, whose half (the middle grid line) is a whole number too. */
  function niceMax(value) {
    if (!(value > 2)) return 2;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [2, 4, 6, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  function clockLabel(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  /* A fresh <svg> in container, as wide as the container (so text keeps its size on a phone),
   * with the y grid (0, half, max) and x labels every 15 minutes (30 when narrow). */
  function frame(container, times, yMax, yFormat) {
    const width = Math.max(Math.round(container.clientWidth), MIN_WIDTH);
    const every = width < 480 ? 30 : 15;
    container.replaceChildren();
    const svg = svgEl("svg", {
      viewBox: `0 0 ${width} ${HEIGHT}`,
      width,
      height: HEIGHT,
      focusable: "false",
      "aria-hidden": "true",
    }, container);
    const plotW = width - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const y = (v) => PAD.top + plotH - (v / yMax) * plotH;
    for (const tick of [0, yMax / 2, yMax]) {
      svgEl("line", { class: tick === 0 ? "axis" : "grid", x1: PAD.left, x2: width - PAD.right,
        y1: y(tick), y2: y(tick) }, svg);
      const label = svgEl("text", { x: PAD.left - 6, y: y(tick) + 4, "text-anchor": "end" }, svg);
      label.textContent = yFormat(tick);
    }
    const slot = plotW / Math.max(times.length, 1);
    times.forEach((time, i) => {
      if (time.getUTCMinutes() % every !== 0) return;
      const text = svgEl("text", { x: PAD.left + slot * (i + 0.5), y: HEIGHT - 8,
        "text-anchor": "middle" }, svg);
      text.textContent = clockLabel(time);
    });
    return { svg, y, slot, plotH, width };
  }

  /* Stacked bars: series = [{name, className, values: [number]}], one bar per time. */
  function stackedBars(container, times, series) {
    const totals = times.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
    const yMax = niceMax(Math.max(0, ...totals));
    const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
    const { svg, y, slot } = frame(container, times, yMax, fmt);
    const barW = Math.max(slot * 0.75, 1);
    times.forEach((time, i) => {
      const x = PAD.left + slot * i + (slot - barW) / 2;
      let base = 0;
      for (const s of series) {
        const value = s.values[i] || 0;
        if (value > 0) {
          svgEl("rect", { class: s.className, x, width: barW, y: y(base + value),
            height: Math.max(y(base) - y(base + value), 0.5) }, svg);
        }
        base += value;
      }
      const target = svgEl("rect", { class: "hover-target", x: PAD.left + slot * i,
        width: slot, y: PAD.top, height: HEIGHT - PAD.top - PAD.bottom }, svg);
      const title = svgEl("title", {}, target);
      title.textContent = `${clockLabel(time)}: ` +
        series.map((s) => `${s.values[i] || 0} ${s.name}`).join(", ");
    });
  }

  /* A line over values in [0, yMax]; null values leave a gap. */
  function line(container, times, values, options) {
    const yMax = options.yMax;
    const { svg, y, slot } = frame(container, times, yMax, options.format);
    let path = "";
    let pen = false;
    times.forEach((time, i) => {
      const value = values[i];
      const x = PAD.left + slot * (i + 0.5);
      if (value === null || value === undefined) {
        pen = false;
        return;
      }
      path += `${pen ? "L" : "M"}${x.toFixed(1)},${y(value).toFixed(1)}`;
      pen = true;
      const dot = svgEl("circle", { class: "dot-rate", cx: x, cy: y(value), r: 2.5 }, svg);
      const title = svgEl("title", {}, dot);
      title.textContent = `${clockLabel(time)}: ${options.format(value)}`;
    });
    if (path) svgEl("path", { class: options.className, d: path }, svg);
  }

  window.JobqueueCharts = { stackedBars, line };
})();
