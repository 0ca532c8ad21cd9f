// Compare page: per-backbone metrics on this collection (table, bars, silhouette curves), precision
// by label, clusters against labels, the maps side by side, the same query's neighbours in each
// backbone, a CSV of the metrics, and embedding the collection with a backbone it lacks (a job).
import { analysisResult, api, ApiError, collectionApi, decodeMap, enc, jobProgressText, loginHint } from './api.js';
import { barChart, lineChart } from './chart.js';
import { $, fmt, h, palette, setStatus, showJob, tile } from './ui.js';

const form = $('#compare-form');
const status = $('#compare-status');
const bar = $('#compare-progress');
const table = $('#compare-table');
const bars = $('#compare-bars');
const curves = $('#compare-curves');
const perLabel = $('#compare-per-label');
const contingency = $('#compare-contingency');
const maps = $('#compare-maps');
const neighbours = $('#compare-neighbours');
const nForm = $('#neighbours-form');
const nStatus = $('#neighbours-status');
const csvButton = $('#compare-csv');
const NEIGHBOURS = 8;
// spaces and scores in plain words (simsearch.spaces.describe, SCORES), rendered into the page
const WORDS = JSON.parse(($('#space-words') || { dataset: {} }).dataset.words || '{"spaces": {}, "scores": {}}');
const titleOf = (space) => (WORDS.spaces[space] || [space])[0];
const explOf = (space) => `${space}: ${(WORDS.spaces[space] || [null, ''])[1]}`;
const scoreTip = (key, fallback) => (WORDS.scores[key] || { explanation: fallback }).explanation;
const spaceHead = (space, colour) => [colour ? h('span', { class: 'swatch', style: `background:${colour}` }) : null,
  h('span', { title: explOf(space) }, titleOf(space))];
const chartNames = (spaces) => Object.fromEntries(spaces.map((sp) => [sp, { title: titleOf(sp), tip: explOf(sp) }]));
const MAP_PX = 320;

let last = null; // the comparison shown: {data, rows, colours}
let mapData = {}; // backbone -> decoded map
let labelColour = new Map(); // one colour per label on every map
let pending = null;

const params = new URLSearchParams(location.search);
if (params.get('backbones')) {
  const want = new Set(params.get('backbones').split(','));
  for (const cb of form.querySelectorAll('input[name=backbones]')) cb.checked = want.has(cb.value);
}
if (params.get('sample') === 'all') $('#compare-all').checked = true;

function chosen() {
  return [...form.querySelectorAll('input[name=backbones]:checked')].map((cb) => cb.value);
}

// The label scores may be named ari/nmi or spelled out; accept both.
function score(obj, ...names) {
  if (!obj) return null;
  for (const n of names) if (typeof obj[n] === 'number') return obj[n];
  return null;
}

function metrics(p) {
  const lab = p.labels || {};
  const atBest = lab.at_best_k || null;
  const atLabels = lab.at_n_labels || null;
  const pk = Object.keys(lab).find((k) => k.startsWith('knn_precision_at_'));
  return {
    dim: p.dim,
    n: p.n_images,
    bestK: p.best_k ?? p.silhouette?.best_k,
    silBest: p.silhouette && p.silhouette.ks ? p.silhouette.scores[p.silhouette.ks.indexOf(p.silhouette.best_k)] : null,
    ari: score(atLabels, 'ari', 'adjusted_rand') ?? score(atBest, 'ari', 'adjusted_rand'),
    nmi: score(atLabels, 'nmi', 'normalized_mutual_info') ?? score(atBest, 'nmi', 'normalized_mutual_info'),
    ariK: (atLabels || atBest || {}).k,
    precision: pk ? lab[pk] : null,
    precisionLabel: pk ? `precision@${lab.precision_k ?? pk.replace('knn_precision_at_', '')}` : 'precision@10',
    perImage: p.embed_seconds_per_image,
    total: p.embed_seconds_total,
  };
}

// ---- metrics table, charts ----------------------------------------------------------------------

function render(data) {
  const panels = data.backbones || [];
  const ok = panels.filter((p) => p.available);
  const bad = panels.filter((p) => !p.available);
  const colours = Object.fromEntries(ok.map((p, i) => [p.backbone, palette(i)]));
  const rows = ok.map((p) => [p, metrics(p)]);
  last = { data, rows, colours };
  csvButton.disabled = !rows.length;
  const pLabel = rows.length ? rows[0][1].precisionLabel : 'precision@10';
  const th = (text, title) => h('th', { scope: 'col', title }, text);
  const best = (key, hi = true) => {
    const vals = rows.map(([, m]) => m[key]).filter((v) => typeof v === 'number');
    return vals.length ? (hi ? Math.max(...vals) : Math.min(...vals)) : null;
  };
  const bests = { silBest: best('silBest'), ari: best('ari'), nmi: best('nmi'), precision: best('precision'), perImage: best('perImage', false) };
  const cell = (m, key, digits = 3, suffix = '') => h('td', { class: 'num' + (m[key] !== null && m[key] === bests[key] && rows.length > 1 ? ' best' : '') },
    m[key] === null || m[key] === undefined ? '—' : fmt(m[key], digits) + suffix);
  const body = rows.map(([p, m]) => h('tr', { 'data-testid': 'compare-row', 'data-backbone': p.backbone },
    h('th', { scope: 'row' }, ...spaceHead(p.backbone, colours[p.backbone]), h('code', { class: 'space-name' }, p.backbone)),
    h('td', { class: 'num' }, fmt(m.dim)), h('td', { class: 'num' }, fmt(m.n)), h('td', { class: 'num' }, fmt(m.bestK)),
    cell(m, 'silBest'), cell(m, 'ari'), cell(m, 'nmi'), cell(m, 'precision'),
    h('td', { class: 'num' + (m.perImage === bests.perImage && rows.length > 1 ? ' best' : '') }, m.perImage == null ? '—' : (m.perImage * 1000).toFixed(1)),
    h('td', { class: 'num' }, m.total == null ? '—' : `${m.total.toFixed(1)} s`)));
  // a backbone the server could not evaluate: one row, one reason
  for (const p of bad) {
    body.push(h('tr', { 'data-testid': 'compare-unavailable-row', 'data-backbone': p.backbone },
      h('th', { scope: 'row' }, ...spaceHead(p.backbone)), h('td', { class: 'num' }, fmt(p.dim)), h('td', { colspan: 8, class: 'muted' }, p.reason || 'unavailable')));
  }
  if (body.length) {
    table.replaceChildren(h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, th('Space'), th('Dim', 'numbers per image'), th('Images'), th('Best k', 'the number of clusters with the best separation'),
        th('Separation (silhouette)', scoreTip('silhouette', 'mean silhouette at the best k')),
        th('Cluster agreement (ARI)', scoreTip('ari', 'adjusted Rand index of k-means clusters vs labels')),
        th('Cluster information (NMI)', scoreTip('nmi', 'normalised mutual information of clusters vs labels')),
        th(`Label precision (${pLabel})`, scoreTip('p_at_10', 'share of the nearest neighbours with the same label')),
        th('ms / image', scoreTip('ms_per_image', 'model time per image when embedded')), th('Embed total', 'model seconds to embed the collection'))),
      h('tbody', {}, body)));
    const smp = data.sample;
    if (smp) {
      table.append(h('p', { class: 'hint', 'data-testid': 'compare-sample' }, smp.size < smp.of
        ? `Scored on a seeded sample of ${fmt(smp.size)} of ${fmt(smp.of)} images (seed ${smp.seed}, ${smp.rule === 'whole labels' ? 'whole labels' : `stratified by ${smp.stratified_by}`}${smp.labels ? `, ${smp.labels} labels` : ''}); tick “Every image” for all.`
        : `Scored on all ${fmt(smp.of)} images.`));
    }
    if (rows.some(([, m]) => m.ariK)) {
      table.append(h('p', { class: 'hint' }, 'ARI and NMI compare k-means clusters (k = the number of distinct labels) with the labels; bold marks the best value.'));
    }
    if ((data.neighbour_overlap || []).length) {
      table.append(h('p', { class: 'hint' }, 'Neighbour overlap (Jaccard of the 10 nearest neighbours): ',
        data.neighbour_overlap.map((o) => `${titleOf(o.a)} vs ${titleOf(o.b)}: ${fmt(o.jaccard)}`).join('; '), '.'));
    }
  } else {
    table.replaceChildren(h('p', { class: 'muted' }, 'No backbone could be evaluated on this collection.'));
  }
  const groups = [
    { name: 'ARI', key: 'ari' }, { name: 'NMI', key: 'nmi' }, { name: pLabel, key: 'precision' }, { name: 'silhouette', key: 'silBest' },
  ].map((g) => ({ name: g.name, values: rows.map(([p, m]) => ({ series: p.backbone, value: m[g.key] })) }));
  barChart(bars, { groups, seriesColors: colours, seriesTitles: chartNames(Object.keys(colours)), title: 'Metrics by backbone' });
  lineChart(curves, {
    series: ok.filter((p) => p.silhouette && p.silhouette.ks).map((p) => ({ name: p.backbone, xs: p.silhouette.ks, ys: p.silhouette.scores, color: colours[p.backbone] })),
    names: chartNames(Object.keys(colours)), xLabel: 'k (clusters)', yLabel: 'mean silhouette', title: 'Silhouette by k for each backbone',
  });
  renderPerLabel(ok, colours);
  renderContingency(ok);
}

function renderPerLabel(ok, colours) {
  const withLabels = ok.filter((p) => p.labels && (p.labels.per_label || []).length);
  if (!withLabels.length) { perLabel.replaceChildren(h('p', { class: 'muted' }, 'Needs at least two labels.')); return; }
  const labels = [...new Set(withLabels.flatMap((p) => p.labels.per_label.map((r) => r.label)))].sort();
  const value = (p, l) => (p.labels.per_label.find((r) => r.label === l) || {}).precision;
  const count = (l) => (withLabels[0].labels.per_label.find((r) => r.label === l) || {}).n;
  perLabel.replaceChildren(h('table', { class: 'table', 'data-testid': 'per-label-table' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Label'), h('th', { scope: 'col' }, 'Images'),
      withLabels.map((p) => h('th', { scope: 'col', class: 'num' }, ...spaceHead(p.backbone, colours[p.backbone]))))),
    h('tbody', {}, labels.map((l) => {
      const vals = withLabels.map((p) => value(p, l));
      const top = Math.max(...vals.filter((v) => typeof v === 'number'));
      return h('tr', { 'data-testid': 'per-label-row', 'data-label': l }, h('th', { scope: 'row' }, l), h('td', { class: 'num' }, fmt(count(l))),
        vals.map((v) => h('td', { class: 'num' + (v === top && withLabels.length > 1 ? ' best' : '') }, fmt(v))));
    }))));
}

function renderContingency(ok) {
  const withTable = ok.filter((p) => p.labels && p.labels.contingency);
  if (!withTable.length) { contingency.replaceChildren(h('p', { class: 'muted' }, 'Needs at least two labels.')); return; }
  contingency.replaceChildren(...withTable.map((p) => {
    const t = p.labels.contingency;
    const max = Math.max(1, ...t.counts.flat());
    return h('figure', { class: 'contingency', 'data-testid': 'contingency', 'data-backbone': p.backbone },
      h('figcaption', { title: explOf(p.backbone) }, `${titleOf(p.backbone)}: k = ${t.k}`),
      h('table', { class: 'table compact' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'label \\ cluster'), t.clusters.map((c) => h('th', { scope: 'col', class: 'num' }, String(c))))),
        h('tbody', {}, t.labels.map((l, r) => h('tr', {}, h('th', { scope: 'row' }, l),
          t.counts[r].map((n) => h('td', { class: 'num', style: `background: rgba(31, 119, 180, ${(0.08 + 0.6 * n / max).toFixed(2)})` }, String(n))))))));
  }));
}

// ---- CSV of the metrics -------------------------------------------------------------------------

function csvValue(v) {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? String(+v.toFixed(6)) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function metricsCsv(comparison) {
  const panels = comparison.backbones || [];
  const labels = [...new Set(panels.flatMap((p) => ((p.labels || {}).per_label || []).map((r) => r.label)))].sort();
  const head = ['space', 'backbone', 'available', 'dim', 'images', 'best_k', 'silhouette_at_best_k', 'ari', 'nmi', 'knn_precision',
    'precision_k', 'ms_per_image', 'embed_seconds_total', ...labels.map((l) => `precision[${l}]`), 'reason'];
  const lines = [head.map(csvValue).join(',')];
  for (const p of panels) {
    const m = p.available ? metrics(p) : {};
    const per = Object.fromEntries(((p.labels || {}).per_label || []).map((r) => [r.label, r.precision]));
    lines.push([titleOf(p.backbone), p.backbone, p.available, p.dim, m.n, m.bestK, m.silBest, m.ari, m.nmi, m.precision, p.labels ? p.labels.precision_k : null,
      m.perImage == null ? null : m.perImage * 1000, m.total, ...labels.map((l) => per[l]), p.available ? '' : p.reason].map(csvValue).join(','));
  }
  return lines.join('\n') + '\n';
}

csvButton.addEventListener('click', () => {
  if (!last) return;
  const blob = new Blob([metricsCsv(last.data)], { type: 'text/csv' });
  const a = h('a', { href: URL.createObjectURL(blob), download: `${document.body.dataset.collection}-comparison.csv`, hidden: true });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
});

// ---- maps side by side --------------------------------------------------------------------------

function drawMap(canvas, d, highlight) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = MAP_PX * dpr;
  canvas.height = MAP_PX * dpr;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, MAP_PX, MAP_PX);
  const pad = 10, n = d.ids.length;
  const [x0, x1] = d.x_range, [y0, y1] = d.y_range;
  const span = Math.max(x1 - x0, y1 - y0) || 1;
  const scale = (MAP_PX - 2 * pad) / span;
  const ox = pad + ((MAP_PX - 2 * pad) - (x1 - x0) * scale) / 2, oy = pad + ((MAP_PX - 2 * pad) - (y1 - y0) * scale) / 2;
  d.screen = new Float32Array(2 * n);
  const r = Math.max(1.2, Math.min(4, 60 / Math.sqrt(n)));
  const step = d.step = Math.max(1, Math.floor(n / 50000)); // a sample on very large maps
  for (let i = 0; i < n; i += step) {
    const sx = ox + (d.x[i] - x0) * scale, sy = MAP_PX - (oy + (d.y[i] - y0) * scale);
    d.screen[2 * i] = sx; d.screen[2 * i + 1] = sy;
    ctx.fillStyle = d.labels[i] == null ? '#9a9a9a' : labelColour.get(d.labels[i]);
    ctx.beginPath();
    ctx.arc(sx, sy, r, 0, Math.PI * 2);
    ctx.fill();
  }
  const k = highlight == null ? -1 : d.ids.indexOf(highlight);
  if (k >= 0) {
    ctx.beginPath();
    ctx.arc(d.screen[2 * k], d.screen[2 * k + 1], r + 5, 0, Math.PI * 2);
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = '#111';
    ctx.stroke();
  }
}

function nearestPoint(d, px, py) {
  let best = -1, bestD = 12 * 12;
  for (let i = 0; i < d.ids.length; i += d.step) {
    const dx = d.screen[2 * i] - px, dy = d.screen[2 * i + 1] - py, dd = dx * dx + dy * dy;
    if (dd < bestD) { bestD = dd; best = i; }
  }
  return best;
}

async function renderMaps(spaces) {
  const mine = pending = {};
  mapData = {};
  const figures = spaces.map((space) => {
    const canvas = h('canvas', { width: MAP_PX, height: MAP_PX, style: `width:${MAP_PX}px;height:${MAP_PX}px`, role: 'img',
      'aria-label': `Map of the collection in ${titleOf(space)}, coloured by label` });
    const note = h('span', { class: 'muted' }, 'loading…');
    const fig = h('figure', { class: 'compare-map', 'data-testid': 'compare-map', 'data-backbone': space }, canvas, h('figcaption', {}, h('strong', { title: explOf(space) }, titleOf(space)), ' ', note));
    return { space, canvas, note, fig };
  });
  maps.replaceChildren(...figures.map((f) => f.fig));
  await Promise.all(figures.map(async (f) => {
    try {
      const d = decodeMap(await analysisResult(collectionApi(`/map.bin?backbone=${enc(f.space)}`), {
        onProgress: (job) => { f.note.textContent = jobProgressText(job, 'computing'); },
      }));
      if (pending !== mine) return;
      mapData[f.space] = d;
      for (const l of [...new Set(d.labels.filter((l) => l != null))].sort()) if (!labelColour.has(l)) labelColour.set(l, palette(labelColour.size));
      f.note.textContent = `${d.n.toLocaleString()} images`;
      f.fig.dataset.ready = '1';
      drawMap(f.canvas, d, currentQuery());
      f.canvas.addEventListener('click', (ev) => {
        const rect = f.canvas.getBoundingClientRect();
        const i = nearestPoint(d, ev.clientX - rect.left, ev.clientY - rect.top);
        if (i >= 0) showNeighbours(d.ids[i]);
      });
    } catch (err) {
      f.note.textContent = err.message;
    }
  }));
  if (pending !== mine) return;
  const first = Object.values(mapData)[0];
  if (currentQuery() != null) showNeighbours(currentQuery());  // the same query in the backbones now chosen
  else if (first && first.ids.length) showNeighbours(first.ids[0]);
}

// ---- the same query's neighbours ----------------------------------------------------------------

function currentQuery() {
  const v = Number($('#query-id').value);
  return Number.isInteger(v) && v > 0 ? v : null;
}

async function showNeighbours(id) {
  $('#query-id').value = String(id);
  const spaces = chosen();
  for (const [space, d] of Object.entries(mapData)) {
    const fig = maps.querySelector(`[data-backbone="${CSS.escape(space)}"] canvas`);
    if (fig) drawMap(fig, d, id);
  }
  setStatus(nStatus, 'Searching…');
  const rows = await Promise.all(spaces.map(async (space) => {
    try {
      const res = await api(`/api/images/${id}/similar?backbone=${enc(space)}&k=${NEIGHBOURS}`);
      return { space, res };
    } catch (err) {
      return { space, err };
    }
  }));
  const query = rows.find((r) => r.res);
  const qLabel = query ? query.res.query.label : null;
  neighbours.replaceChildren(
    query ? h('div', { class: 'neighbour-query' }, tile({ id, label: qLabel, path: query.res.query.path, testid: 'neighbour-query' })) : null,
    ...rows.map(({ space, res, err }) => {
      if (err) return h('div', { class: 'neighbour-row', 'data-backbone': space }, h('h3', { title: explOf(space) }, titleOf(space)), h('p', { class: 'error' }, err.message));
      const same = res.results.filter((r) => qLabel != null && r.label === qLabel).length;
      return h('div', { class: 'neighbour-row', 'data-testid': 'neighbour-row', 'data-backbone': space },
        h('h3', {}, h('span', { class: 'space-title', 'data-space': space, title: explOf(space) }, titleOf(space)), h('span', { class: 'muted' }, qLabel == null ? '' : ` · ${same} of ${res.results.length} labelled “${qLabel}”`)),
        h('div', { class: 'grid small' }, res.results.map((r) => {
          const t = tile({ id: r.image_id, label: r.label, path: r.path, score: r.score, testid: 'neighbour', onpick: showNeighbours });
          if (qLabel != null) t.classList.add(r.label === qLabel ? 'match' : 'miss');
          return t;
        })));
    }));
  setStatus(nStatus, query ? '' : 'No neighbours: the image has no vectors in these backbones.', query ? '' : 'error');
}

nForm.addEventListener('submit', (ev) => { ev.preventDefault(); const id = currentQuery(); if (id) showNeighbours(id); });
$('#query-random').addEventListener('click', () => {
  const d = Object.values(mapData)[0];
  if (d && d.ids.length) showNeighbours(d.ids[Math.floor(Math.random() * d.ids.length)]);
});

// ---- run the comparison -------------------------------------------------------------------------

async function run() {
  const spaces = chosen();
  if (spaces.length < 2) { setStatus(status, 'Choose at least two backbones.', 'error'); return; }
  const q = new URLSearchParams({ backbones: spaces.join(',') });
  if ($('#compare-all').checked) q.set('sample', 'all');
  history.replaceState(null, '', `${location.pathname}?${q}`);
  setStatus(status, 'Computing metrics…');
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  renderMaps(spaces);
  try {
    render(await analysisResult(collectionApi(`/comparison?${q}`), {
      onProgress: (job) => { setStatus(status, jobProgressText(job, 'Comparing the backbones')); showJob(bar, job); },
    }));
    showJob(bar, null);
    setStatus(status, '');
  } catch (err) {
    showJob(bar, null);
    setStatus(status, err.message, 'error');
  } finally {
    button.disabled = false;
  }
}

// ---- embedding a backbone the collection lacks (a job) ------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function embed(button) {
  const li = button.closest('li');
  const progress = li.querySelector('progress');
  const note = li.querySelector('.embed-status');
  const backbone = button.dataset.backbone;
  button.disabled = true;
  note.classList.remove('error');
  note.textContent = 'Starting…';
  try {
    const accepted = await api(collectionApi('/embed'), { method: 'POST', json: { backbone } });
    const est = accepted.estimate?.seconds != null ? `, about ${Math.round(accepted.estimate.seconds)} s in all` : '';
    const skipped = (accepted.ignored.length ? ` (${accepted.ignored.length} without their source file)` : '') + est;
    let job = { processed: 0, ...accepted };  // (the 202 of a re-embedding is running, without counters yet)
    while (job.status === 'queued' || job.status === 'running') {
      showJob(progress, job);
      note.textContent = job.status === 'queued' ? `Waiting for a worker${skipped}…`
        : `Embedding: ${job.processed ?? 0} of ${job.total ?? accepted.total} images${skipped}…`;
      await sleep(600);
      job = await api(`/api/jobs/${accepted.job_id}`);
    }
    showJob(progress, null);
    if (job.status !== 'done') throw new ApiError(500, 'job_failed', job.message || `the job ${job.status}`);
    note.textContent = `Done: ${job.processed} images embedded${job.failed ? `, ${job.failed} failed` : ''}.`;
    await addSpaces();
    li.dataset.done = '1';
    if (chosen().length >= 2) run();
  } catch (err) {
    showJob(progress, null);
    note.textContent = err.message + loginHint(err);
    note.classList.add('error');
    button.disabled = false;
  }
}

// Checkboxes for the spaces that now have vectors (checked: a new one joins the comparison).
async function addSpaces() {
  const detail = await api(collectionApi(''));
  const listed = await api(collectionApi('/spaces')).catch(() => null);  // tune's internal variants stay out
  const internal = new Set((listed?.spaces || []).filter((s) => s.internal).map((s) => s.name));
  for (const s of listed?.spaces || []) if (!WORDS.spaces[s.name]) WORDS.spaces[s.name] = [s.title, s.explanation];
  const have = new Set([...form.querySelectorAll('input[name=backbones]')].map((cb) => cb.value));
  const fieldset = $('#compare-spaces');
  $('#no-spaces')?.remove();
  for (const [space, info] of Object.entries(detail.backbones || {})) {
    if (!info.vectors_in_db || have.has(space) || internal.has(space)) continue;
    fieldset.append(h('label', { title: explOf(space) }, h('input', { type: 'checkbox', name: 'backbones', value: space, checked: true }), ` ${titleOf(space)}`));
  }
  form.querySelector('button[type=submit]').disabled = chosen().length < 2;
}

// read-only hooks for tests and the console
window.simsearchCompare = {
  ids: (space) => (mapData[space] ? mapData[space].ids : null),
  point: (space, i) => [mapData[space].screen[2 * i], mapData[space].screen[2 * i + 1]],
  csv: () => (last ? metricsCsv(last.data) : null),  // what "Download CSV" saves
};

for (const b of document.querySelectorAll('button.embed')) b.addEventListener('click', () => embed(b));
form.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
if (chosen().length >= 2) run();
