// Map page: every image as a point of a 2-D projection (WebGL), coloured by cluster or label;
// zoomed in, the points are drawn as their thumbnails (sprites.js); hover shows the thumbnail; a
// lasso selects points, which can be saved as a label or exported (CSV / JSON / COCO of ids, paths, labels).
import { analysisResult, api, collectionApi, decodeMap, enc, jobProgressText, loginHint, thumbUrl } from './api.js';
import { Scatter, categories } from './scatter.js';
import { downloadExport } from './export.js';
import { SpriteLayer } from './sprites.js';
import { $, h, PALETTE, palette, setStatus, showJob, tile } from './ui.js';

const NONE_COLOUR = '#9a9a9a';
const SHOW_SELECTED = 200;

const form = $('#map-form');
const backbone = $('#map-backbone');
const status = $('#map-status');
const bar = $('#map-progress');
let pending = null; // the AbortController of the load in progress
const wrap = $('#map-wrap');
const glCanvas = $('#map-gl');
const overlay = $('#map-overlay');
const spriteCanvas = $('#map-sprites');
const showImages = $('#map-images');
const exportResult = $('#export-result');
const ctx = overlay.getContext('2d');
const tooltip = $('#map-tooltip');
const legend = $('#map-legend');
const selPanel = $('#selection');
const selCount = $('#selection-count');
const selGrid = $('#selection-grid');
const labelForm = $('#label-form');
const labelResult = $('#label-result');

let data = null; // {ids, x, y, labels, clusters, backbone}
let scatter = null;
let sprites = null;
let colours = { cluster: [], label: [] }; // CSS colour of each point, by colour mode (sprite frames)
let hover = -1;
let selected = [];
let lassoPts = null;
let dragging = null;

window.simsearchMap = null; // set once loaded: read-only hooks for tests and the console

async function load() {
  if (!backbone.value) return;
  setStatus(status, 'Loading map…');
  if (pending) pending.abort();
  const mine = pending = new AbortController();
  try {
    // the binary map: typed arrays, 12 bytes a point (a million points stay quick to load)
    const d = decodeMap(await analysisResult(collectionApi(`/map.bin?backbone=${encodeURIComponent(backbone.value)}`), {
      signal: mine.signal,
      onProgress: (job) => { setStatus(status, jobProgressText(job, 'Computing the map')); showJob(bar, job); },
    }));
    showJob(bar, null);
    setup(d);
  } catch (err) {
    if (err.name === 'AbortError') return;  // another backbone was chosen meanwhile
    showJob(bar, null);
    setStatus(status, err.message, 'error');
  } finally {
    if (pending === mine) pending = null;
  }
}

function setup(d) {
  data = { ...d, labels: d.labels.slice() };
  const fresh = document.createElement('canvas'); // a new WebGL context for a new data set
  fresh.id = glCanvas.id;
  fresh.className = glCanvas.className;
  for (const a of ['data-testid', 'aria-label', 'role']) fresh.setAttribute(a, glCanvas.getAttribute(a));
  const old = $('#map-gl');
  old.replaceWith(fresh);
  try {
    scatter = new Scatter(fresh, { xs: d.x, ys: d.y, clusters: d.clusters, labels: data.labels, palette: PALETTE, none: NONE_COLOUR });
  } catch (err) {
    setStatus(status, err.message, 'error');
    return;
  }
  scatter.setMode(form.colour.value);
  colours = { cluster: pointColours(d.clusters.map((c) => (c === null || c < 0 ? null : c))), label: pointColours(data.labels) };
  const space = d.backbone;
  sprites = new SpriteLayer(spriteCanvas, scatter, d, {
    atlasUrl: (tile) => collectionApi(`/atlas/${enc(space)}/${tile}?v=${d.generation}`),
    colourOf: (i) => colours[form.colour.value][i],
  });
  sprites.setEnabled(showImages.checked);
  scatter.onDraw = (moving) => { sprites.draw(); if (!moving) emptyHint.hidden = scatter.visibleCount() > 0; };
  sizeCanvases();
  scatter.fit();
  scatter.calibrate();
  setSelection([]);
  hover = -1;
  drawOverlay();
  renderLegend();
  const named = [...backbone.options].find((o) => o.value === d.backbone);  // the space in words
  setStatus(status, `${scatter.n.toLocaleString()} images · ${named && named.dataset.title ? named.dataset.title : d.backbone}`);
  window.simsearchMap = {
    get n() { return scatter.n; },
    get frames() { return scatter.frames; },
    get drawCalls() { return scatter.drawCalls; },
    get lastCount() { return scatter.lastCount; },
    get hover() { return hover < 0 ? null : data.ids[hover]; },
    get selectedIds() { return selected.map((i) => data.ids[i]); },
    ids: data.ids,
    toScreen: (i) => scatter.toScreen(i),
    pick: (px, py) => scatter.pick(px, py),
    paintedPixels: () => scatter.paintedPixels(),
    get sprites() { return { drawn: sprites.drawn, requests: sprites.requests, level: sprites.level, size: sprites.spritePx() }; },
    zoomAt: (px, py, factor) => scatter.zoomAt(px, py, factor),
    fit: () => scatter.fit(),
    get emptyView() { return !emptyHint.hidden; },
  };
}

// Zoomed or panned to where no image is: say so, and how to get back.
const emptyHint = $('#map-empty-hint');
emptyHint.querySelector('button').addEventListener('click', () => { if (scatter) { scatter.fit(); drawOverlay(); } });

function sizeCanvases() {
  const dpr = window.devicePixelRatio || 1;
  overlay.width = Math.round(overlay.clientWidth * dpr);
  overlay.height = Math.round(overlay.clientHeight * dpr);
  if (sprites) sprites.resize();
  if (scatter) scatter.resize();
  drawOverlay();
}

function pointColours(values) {
  const { codes } = categories(values);
  return Array.from(codes, (c) => (c < 0 ? NONE_COLOUR : palette(c)));
}

function renderLegend() {
  const mode = form.colour.value;
  const values = mode === 'label' ? data.labels : data.clusters.map((c) => (c === null || c < 0 ? null : c));
  const { names, codes } = categories(values);
  const counts = new Array(names.length).fill(0);
  let none = 0;
  for (const c of codes) { if (c < 0) none++; else counts[c]++; }
  const items = names.map((name, i) => h('li', {},
    h('span', { class: 'swatch', style: `background:${palette(i)}` }),
    mode === 'label' ? String(name) : `cluster ${name}`, h('span', { class: 'muted' }, ` ${counts[i]}`)));
  if (none) {
    items.push(h('li', {}, h('span', { class: 'swatch', style: `background:${NONE_COLOUR}` }),
      mode === 'label' ? 'no label' : 'no cluster', h('span', { class: 'muted' }, ` ${none}`)));
  }
  if (names.length > PALETTE.length) items.push(h('li', { class: 'hint' }, `${names.length} ${mode}s share ${PALETTE.length} colours.`));
  legend.replaceChildren(...items);
}

// ---- the overlay: hover ring and lasso ----------------------------------------------------------

function drawOverlay() {
  const dpr = window.devicePixelRatio || 1;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (scatter && hover >= 0) {
    const [x, y] = scatter.toScreen(hover);
    ctx.beginPath();
    ctx.arc(x, y, scatter.pointSize() / 2 + 4, 0, Math.PI * 2);
    ctx.lineWidth = 2;
    ctx.strokeStyle = '#111';
    ctx.stroke();
  }
  if (lassoPts && lassoPts.length >= 4) {
    ctx.beginPath();
    ctx.moveTo(lassoPts[0], lassoPts[1]);
    for (let k = 2; k < lassoPts.length; k += 2) ctx.lineTo(lassoPts[k], lassoPts[k + 1]);
    ctx.closePath();
    ctx.fillStyle = 'rgba(31, 119, 180, 0.12)';
    ctx.fill();
    ctx.setLineDash([5, 4]);
    ctx.strokeStyle = '#1f77b4';
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.setLineDash([]);
  }
}

function showTooltip(i, px, py) {
  if (i < 0) { tooltip.hidden = true; return; }
  const id = data.ids[i];
  const img = tooltip.querySelector('img');
  if (img.dataset.id !== String(id)) {
    img.dataset.id = String(id);
    img.src = thumbUrl(id);
    img.alt = data.labels[i] || `image ${id}`;
  }
  const cl = data.clusters[i];
  tooltip.querySelector('.caption').textContent =
    `${data.labels[i] || 'no label'} · cluster ${cl === null || cl < 0 ? '—' : cl} · #${id}`;
  tooltip.hidden = false;
  const W = wrap.clientWidth, H = wrap.clientHeight, tw = tooltip.offsetWidth, th = tooltip.offsetHeight;
  tooltip.style.left = `${px + 14 + tw > W ? px - tw - 14 : px + 14}px`;
  tooltip.style.top = `${Math.max(0, Math.min(H - th, py - th / 2))}px`;
}

function local(ev) {
  const r = overlay.getBoundingClientRect();
  return [ev.clientX - r.left, ev.clientY - r.top];
}

let moveQueued = null;
overlay.addEventListener('pointermove', (ev) => {
  if (!scatter) return;
  const [px, py] = local(ev);
  if (dragging === 'pan') {
    scatter.panBy(ev.clientX - moveQueued.x, ev.clientY - moveQueued.y);
    moveQueued = { x: ev.clientX, y: ev.clientY };
    tooltip.hidden = true;
    hover = -1;
    requestAnimationFrame(drawOverlay);
    return;
  }
  if (dragging === 'lasso') {
    const n = lassoPts.length;
    if (Math.hypot(px - lassoPts[n - 2], py - lassoPts[n - 1]) >= 3) lassoPts.push(px, py);
    requestAnimationFrame(drawOverlay);
    return;
  }
  const i = scatter.pick(px, py);
  if (i !== hover) {
    hover = i;
    drawOverlay();
  }
  showTooltip(i, px, py);
});

overlay.addEventListener('pointerleave', () => {
  if (dragging) return;
  hover = -1;
  tooltip.hidden = true;
  drawOverlay();
});

overlay.addEventListener('pointerdown', (ev) => {
  if (!scatter || ev.button !== 0) return;
  overlay.setPointerCapture(ev.pointerId);
  const [px, py] = local(ev);
  if (ev.shiftKey || form.tool.value === 'lasso') {
    dragging = 'lasso';
    lassoPts = [px, py];
  } else {
    dragging = 'pan';
    moveQueued = { x: ev.clientX, y: ev.clientY, startX: ev.clientX, startY: ev.clientY };
  }
  tooltip.hidden = true;
});

overlay.addEventListener('pointerup', (ev) => {
  if (!dragging) return;
  const was = dragging;
  dragging = null;
  if (was === 'lasso') {
    const pts = lassoPts;
    lassoPts = null;
    if (pts.length >= 6) setSelection(scatter.lasso(pts));
    drawOverlay();
  } else if (was === 'pan' && Math.hypot(ev.clientX - moveQueued.startX, ev.clientY - moveQueued.startY) < 3) {
    // a click (no drag) on a point opens a similarity search from it
    const [px, py] = local(ev);
    const i = scatter.pick(px, py);
    if (i < 0) return;
    if (window.simsearchViewer) window.simsearchViewer.open(data.ids[i]);  // the full-image viewer, where the page has it
    else location.href = location.pathname.replace(/\/map$/, '/search') + `?image_id=${data.ids[i]}`;
  }
});

overlay.addEventListener('wheel', (ev) => {
  if (!scatter) return;
  ev.preventDefault();
  const [px, py] = local(ev);
  scatter.zoomAt(px, py, Math.exp(-ev.deltaY * (ev.deltaMode === 1 ? 0.05 : 0.0015)));
  hover = -1;
  tooltip.hidden = true;
  requestAnimationFrame(drawOverlay);
}, { passive: false });

// ---- selection and saving it as a label ---------------------------------------------------------

function setSelection(indices) {
  selected = indices;
  if (sprites) sprites.setSelection(indices);
  if (scatter) scatter.setSelection(indices);
  labelResult.textContent = '';
  exportResult.textContent = '';
  selPanel.hidden = indices.length === 0;
  if (!indices.length) { selGrid.replaceChildren(); return; }
  const labelCounts = {};
  for (const i of indices) { const l = data.labels[i] || 'no label'; labelCounts[l] = (labelCounts[l] || 0) + 1; }
  const mix = Object.entries(labelCounts).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([l, n]) => `${n} ${l}`).join(', ');
  selCount.textContent = `${indices.length} image${indices.length === 1 ? '' : 's'} selected (${mix})`
    + (indices.length > SHOW_SELECTED ? `; the first ${SHOW_SELECTED} are shown` : '') + '.';
  selGrid.replaceChildren(...indices.slice(0, SHOW_SELECTED).map((i) => tile({ id: data.ids[i], label: data.labels[i], testid: 'selected-image' })));
}

labelForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const label = labelForm.label.value.trim();
  if (!label || !selected.length) return;
  const button = labelForm.querySelector('button');
  button.disabled = true;
  labelResult.classList.remove('error');
  labelResult.textContent = 'Saving…';
  try {
    const ids = selected.map((i) => data.ids[i]);
    const res = await api(collectionApi('/labels'), { method: 'POST', json: { image_ids: ids, label } });
    for (const i of selected) data.labels[i] = label;
    colours.label = pointColours(data.labels);
    scatter.setLabels(data.labels);
    renderLegend();
    const n = res && typeof res.updated === 'number' ? res.updated : ids.length;
    labelResult.textContent = `Saved: ${n} image${n === 1 ? '' : 's'} labelled “${label}”.`;
    const list = document.getElementById('known-labels');
    if (![...list.options].some((o) => o.value === label)) list.append(h('option', { value: label }));
  } catch (err) {
    labelResult.textContent = err.message + loginHint(err);
    labelResult.classList.add('error');
  } finally {
    button.disabled = false;
  }
});

// The selection as a file (export.js): the server adds every path (as the API shows them) and the labels.
async function exportSelection(format) {
  if (!selected.length) return;
  exportResult.classList.remove('error');
  exportResult.textContent = 'Exporting…';
  try {
    const name = await downloadExport({ image_ids: selected.map((i) => data.ids[i]), format });
    exportResult.textContent = `Exported ${selected.length} image${selected.length === 1 ? '' : 's'} to ${name}.`;
  } catch (err) {
    exportResult.textContent = err.message + loginHint(err);
    exportResult.classList.add('error');
  }
}

for (const b of document.querySelectorAll('#export-csv, #export-json, #export-coco')) b.addEventListener('click', () => exportSelection(b.dataset.format));
showImages.addEventListener('change', () => { if (sprites) sprites.setEnabled(showImages.checked); });
$('#clear-selection').addEventListener('click', () => setSelection([]));
$('#map-reset').addEventListener('click', () => { if (scatter) { scatter.fit(); drawOverlay(); } });
for (const r of form.querySelectorAll('input[name=colour]')) {
  r.addEventListener('change', () => { if (scatter) { scatter.setMode(form.colour.value); renderLegend(); } });  // the frames follow on the next frame
}
for (const r of form.querySelectorAll('input[name=tool]')) {
  r.addEventListener('change', () => { overlay.classList.toggle('lasso', form.tool.value === 'lasso'); });
}
backbone.addEventListener('change', load);
form.addEventListener('submit', (ev) => ev.preventDefault());
window.addEventListener('keydown', (ev) => { if (ev.key === 'Escape' && selected.length) setSelection([]); });
new ResizeObserver(() => sizeCanvases()).observe(wrap);
load();
