// Hand-drawn SVG charts: a line chart (silhouette curves) and grouped horizontal bars (metrics).
const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// Round ticks from at or below lo to at or above hi: the axis always holds every value.
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw);
  const first = Math.floor(lo / step + 1e-9) * step, last = Math.ceil(hi / step - 1e-9) * step;
  const ticks = [];
  for (let t = first; t <= last + step * 1e-9; t += step) ticks.push(+t.toFixed(10));
  return ticks;
}

const CHAR_PX = 6.6; // width of a character of the 11px tick font, near enough to lay out legends
const LEGEND_CHARS = 48; // a longer legend entry is cut with "…" (its tooltip has it whole)

// A series' legend entry: `names` (optional, name -> {title, tip}) gives a readable title and the
// tooltip (e.g. a space's internal name and explanation); else the name itself.
function legendWords(names, name) {
  const w = (names && names[name]) || { title: name, tip: name };
  const title = String(w.title);
  return { text: title.length > LEGEND_CHARS ? title.slice(0, LEGEND_CHARS - 1) + '…' : title, title, tip: w.tip || name };
}

function legendEntry(x, y, color, words) {
  const g = s('g', { class: 'legend-entry' });
  g.append(s('title', {}, words.tip));
  g.append(s('rect', { x, y, width: 10, height: 10, fill: color }));
  g.append(s('text', { x: x + 14, y: y + 9, class: 'tick' }, words.text));
  return g;
}

// Legend entries laid out in rows that wrap at the chart's width: [{x, y}] and the rows' height.
function legendLayout(names, x0, width) {
  const at = [];
  let x = x0, y = 0;
  for (const n of names) {
    const w = 14 + String(n).length * CHAR_PX + 18;
    if (x > x0 && x + w > x0 + width) { x = x0; y += 16; }
    at.push({ x, y });
    x += w;
  }
  return { at, height: names.length ? y + 16 : 0 };
}

// series: [{name, xs, ys, color, metric}] (metric: what y is, for tooltips; default silhouette);
// names: {name: {title, tip}} (optional), the series' readable titles (see legendWords);
// highlight: [{series, x, label}] draws a ringed point; markers: [{x, label, color}] draws a dashed
// vertical line at x (within the x range) with its label at the top; logX: a logarithmic x axis (x > 0).
export function lineChart(container, { series, names = null, xLabel = '', yLabel = '', highlight = [], markers = [], title = '', logX = false }) {
  container.replaceChildren();
  const W = 480, m = { l: 52, r: 16, t: 26, b: 42 };
  const legend = series.length > 1 ? legendLayout(series.map((se) => legendWords(names, se.name).text), m.l, W - m.l - m.r) : { at: [], height: 0 };
  const plotH = 260, H = plotH + legend.height;
  const pts = series.flatMap((se) => se.xs.map((x, i) => [x, se.ys[i]])).filter(([, y]) => y !== null && Number.isFinite(y));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'svg-chart', 'aria-label': title || `${yLabel} by ${xLabel}` });
  if (!pts.length) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis-label' }, 'no data'));
    container.append(svg);
    return svg;
  }
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const yt = niceTicks(Math.min(0, ...ys), Math.max(...ys) || 1, 5);
  const y0 = yt[0], y1 = yt[yt.length - 1];
  const T = logX && x0 > 0 ? Math.log : (x) => x;
  const X = (x) => m.l + ((T(x) - T(x0)) / (T(x1) - T(x0))) * (W - m.l - m.r);
  const Y = (y) => plotH - m.b - ((y - y0) / (y1 - y0)) * (plotH - m.t - m.b);
  const axes = s('g', { class: 'axes' });
  for (const t of yt) {
    axes.append(s('line', { x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t), class: t === 0 ? 'zero' : 'gridline' }));
    axes.append(s('text', { x: m.l - 6, y: Y(t) + 4, 'text-anchor': 'end', class: 'tick' }, String(+t.toFixed(3))));
  }
  const xTicks = [...new Set(xs)].sort((a, b) => a - b);
  const every = Math.ceil(xTicks.length / 12);
  xTicks.forEach((t, i) => {
    if (i % every === 0) axes.append(s('text', { x: X(t), y: plotH - m.b + 16, 'text-anchor': 'middle', class: 'tick' }, String(t)));
  });
  axes.append(s('line', { x1: m.l, x2: W - m.r, y1: plotH - m.b, y2: plotH - m.b, class: 'axis' }));
  axes.append(s('text', { x: (m.l + W - m.r) / 2, y: plotH - 6, 'text-anchor': 'middle', class: 'axis-label' }, xLabel));
  axes.append(s('text', { x: 12, y: (m.t + plotH - m.b) / 2, 'text-anchor': 'middle', class: 'axis-label',
    transform: `rotate(-90 12 ${(m.t + plotH - m.b) / 2})` }, yLabel));
  svg.append(axes);
  series.forEach((se) => {
    const g = s('g', { class: 'series', 'data-name': se.name });
    const ok = se.xs.map((x, i) => [x, se.ys[i]]).filter(([, y]) => y !== null && Number.isFinite(y));
    g.append(s('polyline', { points: ok.map(([x, y]) => `${X(x)},${Y(y)}`).join(' '), fill: 'none', stroke: se.color, 'stroke-width': 2 }));
    for (const [x, y] of ok) {
      const c = s('circle', { cx: X(x), cy: Y(y), r: 3.5, fill: se.color, 'data-k': x });
      c.append(s('title', {}, `${se.name ? legendWords(names, se.name).title + ': ' : ''}k=${x}, ${se.metric || 'silhouette'} ${y.toFixed(3)}`));
      g.append(c);
    }
    svg.append(g);
  });
  for (const mk of markers) {
    if (!(mk.x >= x0 && mk.x <= x1)) continue;
    const g = s('g', { class: 'marker', 'data-x': mk.x });
    g.append(s('line', { x1: X(mk.x), x2: X(mk.x), y1: m.t, y2: plotH - m.b, stroke: mk.color || '#555', 'stroke-width': 1.5, 'stroke-dasharray': '5 4' }));
    if (mk.label) g.append(s('text', { x: Math.min(W - m.r - 30, Math.max(m.l + 30, X(mk.x))), y: m.t - 8, 'text-anchor': 'middle', class: 'hl-label' }, mk.label));
    svg.append(g);
  }
  for (const hl of highlight) {
    const se = series[hl.series || 0];
    const i = se ? se.xs.indexOf(hl.x) : -1;
    if (i < 0 || se.ys[i] === null) continue;
    svg.append(s('circle', { cx: X(hl.x), cy: Y(se.ys[i]), r: 8, fill: 'none', stroke: hl.color || '#111', 'stroke-width': 2, class: 'highlight' }));
    if (hl.label) {
      const lx = Math.min(W - m.r - 30, Math.max(m.l + 30, X(hl.x)));
      svg.append(s('text', { x: lx, y: Math.max(11, Y(se.ys[i]) - 12), 'text-anchor': 'middle', class: 'hl-label' }, hl.label));
    }
  }
  if (series.length > 1) {  // below the plot, wrapping: never over the curves, never cut
    const lg = s('g', { class: 'legend' });
    series.forEach((se, i) => {
      const { x, y } = legend.at[i];
      lg.append(legendEntry(x, plotH + y, se.color, legendWords(names, se.name)));
    });
    svg.append(lg);
  }
  container.append(svg);
  return svg;
}

// groups: [{name, values: [{series, value}]}], values in [0, 1] (metrics); seriesTitles: {series:
// {title, tip}} (optional), the series' readable titles (see legendWords).
export function barChart(container, { groups, seriesColors, seriesTitles = null, max = 1, title = '' }) {
  container.replaceChildren();
  const names = Object.keys(seriesColors);
  const words = Object.fromEntries(names.map((n) => [n, legendWords(seriesTitles, n)]));
  const barH = 14, gap = 4, groupGap = 16, labelW = 130, W = 480;
  const legend = legendLayout(names.map((n) => words[n].text), 0, W);
  const height = groups.length * (names.length * (barH + gap) + groupGap) + 8 + legend.height;
  const svg = s('svg', { viewBox: `0 0 ${W} ${height}`, role: 'img', class: 'svg-chart', 'aria-label': title });
  const X = (v) => labelW + (Math.max(0, v) / max) * (W - labelW - 60);
  let y = 4;
  for (const g of groups) {
    svg.append(s('text', { x: 0, y: y + barH, class: 'axis-label' }, g.name));
    for (const name of names) {
      const v = g.values.find((e) => e.series === name);
      const val = v ? v.value : null;
      if (val !== null && val !== undefined && Number.isFinite(val)) {
        const r = s('rect', { x: labelW, y, width: Math.max(1, X(val) - labelW), height: barH, fill: seriesColors[name] });
        r.append(s('title', {}, `${words[name].title}: ${val.toFixed(3)}`));
        svg.append(r);
        svg.append(s('text', { x: X(val) + 4, y: y + barH - 3, class: 'tick' }, val.toFixed(3)));
      } else {
        svg.append(s('text', { x: labelW + 2, y: y + barH - 3, class: 'tick muted' }, `${words[name].text}: n/a`));
      }
      y += barH + gap;
    }
    y += groupGap;
  }
  const lg = s('g', { class: 'legend' });
  const top = height - legend.height;
  names.forEach((n, i) => {
    const { x, y } = legend.at[i];
    lg.append(legendEntry(x, top + y, seriesColors[n], words[n]));
  });
  svg.append(lg);
  container.append(svg);
  return svg;
}
