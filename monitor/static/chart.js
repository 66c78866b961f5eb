// Small SVG charts, drawn with DOM calls only (no library, no inline style: colours come from
// classes in caruso.css). Labels are text nodes, so nothing from the data is read as markup.

const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** A round upper bound for an axis (1, 2, 5 × 10^n). */
function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

/**
 * Stacked bars per category (e.g. answered / abandoned / overflowed per interval), with an
 * optional line on a 0-100 % axis (e.g. the service level).
 *
 * spec = { labels: [..], series: [{ name, cls, values: [..] }], line: { name, cls, values } ,
 *          onBar(index, seriesIndex) }
 */
export function stackedBars(spec) {
  const width = 960;
  const height = 280;
  const pad = { left: 48, right: spec.line ? 52 : 16, top: 16, bottom: 56 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const n = spec.labels.length;
  const totals = spec.labels.map((_, i) =>
    spec.series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const top = niceMax(Math.max(0, ...totals));
  const svg = svgEl("svg", {
    class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": spec.title || "chart", preserveAspectRatio: "xMidYMid meet",
  });
  if (spec.title) svg.append(svgEl("title", {}, spec.title));

  // Grid and the left axis.
  for (let k = 0; k <= 4; k += 1) {
    const y = pad.top + plotH - (plotH * k) / 4;
    svg.append(svgEl("line", { class: "grid", x1: pad.left, x2: pad.left + plotW, y1: y, y2: y }));
    svg.append(svgEl("text", { class: "axis", x: pad.left - 6, y: y + 4, "text-anchor": "end" },
      Math.round((top * k) / 4)));
    if (spec.line) {
      svg.append(svgEl("text", { class: "axis", x: pad.left + plotW + 6, y: y + 4 },
        `${k * 25} %`));
    }
  }

  const slot = n ? plotW / n : plotW;
  const barW = Math.max(1, Math.min(40, slot * 0.7));
  const labelEvery = Math.max(1, Math.ceil(n / 16));
  spec.labels.forEach((label, i) => {
    const x = pad.left + slot * i + (slot - barW) / 2;
    let base = pad.top + plotH;
    spec.series.forEach((series, s) => {
      const value = series.values[i] || 0;
      if (value <= 0) return;
      const h = (plotH * value) / top;
      base -= h;
      const bar = svgEl("rect", {
        class: `bar ${series.cls}`, x: x.toFixed(1), y: base.toFixed(1),
        width: barW.toFixed(1), height: h.toFixed(1), tabindex: spec.onBar ? 0 : -1,
        "data-index": i, "data-series": series.name,
      });
      bar.append(svgEl("title", {}, `${label}: ${value} ${series.name}`));
      if (spec.onBar) {
        bar.addEventListener("click", () => spec.onBar(i, s));
        bar.addEventListener("keydown", (e) => { if (e.key === "Enter") spec.onBar(i, s); });
      }
      svg.append(bar);
    });
    if (i % labelEvery === 0) {
      svg.append(svgEl("text", {
        class: "axis", x: (x + barW / 2).toFixed(1), y: pad.top + plotH + 16,
        "text-anchor": "middle",
      }, label));
    }
  });

  if (spec.line) {
    const points = [];
    spec.line.values.forEach((value, i) => {
      if (value === null || value === undefined) return;
      const x = pad.left + slot * i + slot / 2;
      const y = pad.top + plotH - plotH * Math.max(0, Math.min(1, value));
      points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
      const dot = svgEl("circle", { class: `dot ${spec.line.cls}`, cx: x.toFixed(1),
        cy: y.toFixed(1), r: 3 });
      dot.append(svgEl("title", {}, `${spec.labels[i]}: ${Math.round(value * 100)} % ${spec.line.name}`));
      svg.append(dot);
    });
    if (points.length > 1) {
      svg.append(svgEl("polyline", { class: `line ${spec.line.cls}`, points: points.join(" ") }));
    }
  }

  // Legend.
  const legend = [...spec.series.map((s) => [s.name, s.cls]), ...(spec.line ? [[spec.line.name, spec.line.cls]] : [])];
  let lx = pad.left;
  for (const [name, cls] of legend) {
    svg.append(svgEl("rect", { class: `swatch ${cls}`, x: lx, y: height - 18, width: 12, height: 12 }));
    svg.append(svgEl("text", { class: "legend", x: lx + 16, y: height - 8 }, name));
    lx += 24 + name.length * 7.5;
  }
  return svg;
}
