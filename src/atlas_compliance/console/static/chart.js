// Atlas Compliance console: the daily query volume chart (inline SVG, no library).
"use strict";
window.Atlas = window.Atlas || {};
(() => {
  const A = window.Atlas;
  const NS = "http://www.w3.org/2000/svg";
  const HEIGHT = 190;
  const M = { top: 12, right: 8, bottom: 26, left: 40 };

  function svgEl(tag, attrs = {}, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** 1, 2, 5, 10, 20, 50, … : the smallest "round" number ≥ n. */
  function niceCeil(n) {
    if (n <= 1) return 1;
    const power = 10 ** Math.floor(Math.log10(n));
    for (const step of [1, 2, 5, 10]) if (step * power >= n) return step * power;
    return 10 * power;
  }

  function draw(container, days) {
    const width = Math.max(280, Math.round(container.clientWidth || 800));
    const plotW = width - M.left - M.right;
    const plotH = HEIGHT - M.top - M.bottom;
    const total = days.reduce((sum, d) => sum + d.queries, 0);
    const peak = days.reduce((best, d) => (d.queries > best.queries ? d : best), { queries: 0, date: null });
    const top = niceCeil(peak.queries);
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", "aria-labelledby": "chart-svg-title chart-svg-desc" });
    svg.append(svgEl("title", { id: "chart-svg-title" }, "Daily query volume"));
    const first = days[0]?.date, last = days[days.length - 1]?.date;
    svg.append(svgEl("desc", { id: "chart-svg-desc" }, days.length
      ? `${days.length} days from ${first} to ${last}: ${total} queries in total` +
        (peak.date ? `, at most ${peak.queries} on ${peak.date}.` : ".")
      : "No days in the window."));
    // Horizontal grid at 0, half and the top, labelled on the left.
    for (const value of [0, top / 2, top]) {
      const y = M.top + plotH - (value / top) * plotH;
      svg.append(svgEl("line", { class: value === 0 ? "axis" : "grid", x1: M.left, x2: width - M.right, y1: y, y2: y }));
      svg.append(svgEl("text", { x: M.left - 6, y: y + 4, "text-anchor": "end" },
        Number.isInteger(value) ? A.fmtInt(value) : ""));
    }
    const step = days.length ? plotW / days.length : plotW;
    const barW = Math.max(1, Math.min(step * 0.72, 28));
    days.forEach((d, i) => {
      const h = d.queries ? Math.max(2, (d.queries / top) * plotH) : 0;
      const x = M.left + i * step + (step - barW) / 2;
      const bar = svgEl("rect", { class: "bar", x: x.toFixed(1), y: (M.top + plotH - h).toFixed(1),
        width: barW.toFixed(1), height: h.toFixed(1), rx: Math.min(3, barW / 3).toFixed(1), "data-date": d.date,
        "data-queries": d.queries });
      bar.append(svgEl("title", {}, `${A.fmtDay(d.date)}: ${A.fmtInt(d.queries)} ${d.queries === 1 ? "query" : "queries"}`));
      svg.append(bar);
    });
    // Date labels: about one every 90 px, always the first and the last day.
    const every = Math.max(1, Math.ceil(days.length / Math.max(2, Math.floor(plotW / 90))));
    days.forEach((d, i) => {
      const isLast = i === days.length - 1;
      // Every `every`-th day, the first and the last, without crowding the last label.
      if (!(i === 0 || isLast || (i % every === 0 && days.length - 1 - i >= every * 0.6))) return;
      const x = M.left + i * step + step / 2;
      const anchor = i === 0 && days.length > 1 ? "start" : isLast && days.length > 1 ? "end" : "middle";
      const lx = anchor === "start" ? Math.max(M.left, x - step / 2) : anchor === "end" ? Math.min(width - M.right, x + step / 2) : x;
      svg.append(svgEl("text", { x: lx, y: HEIGHT - 8, "text-anchor": anchor },
        A.fmtDay(d.date, { month: "short", day: "numeric" })));
    });
    const summary = A.el("p", { class: "chart-summary" }, days.length
      ? `${A.fmtInt(total)} ${total === 1 ? "query" : "queries"} over ${days.length} days` +
        (peak.date ? ` · busiest day ${A.fmtDay(peak.date)} (${A.fmtInt(peak.queries)})` : "")
      : "No days to show.");
    container.replaceChildren(svg, summary);
  }

  let observer = null;
  /** Draw the chart and redraw it when the container changes width (bars stay crisp, text undistorted). */
  A.drawVolumeChart = (container, days) => {
    observer?.disconnect();
    draw(container, days);
    let lastWidth = container.clientWidth;
    observer = new ResizeObserver(() => {
      if (Math.abs(container.clientWidth - lastWidth) < 4) return;
      lastWidth = container.clientWidth;
      draw(container, days);
    });
    observer.observe(container);
  };
  A.chartMessage = (container, text) => {
    observer?.disconnect();
    container.replaceChildren(A.el("p", { class: "muted" }, text));
  };
})();
