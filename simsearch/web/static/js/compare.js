// Compare page: per-backbone metrics on this collection (table and bars), the silhouette curves
// on one chart, and the backbones that could not be evaluated with the reason.
import { analysisResult, collectionApi, jobProgressText } from './api.js';
import { barChart, lineChart } from './chart.js';
import { $, fmt, h, palette, setStatus, showJob } from './ui.js';

const form = $('#compare-form');
const status = $('#compare-status');
const bar = $('#compare-progress');
const table = $('#compare-table');
const bars = $('#compare-bars');
const curves = $('#compare-curves');
const unavailable = $('#unavailable');

const params = new URLSearchParams(location.search);
if (params.get('backbones')) {
  const want = new Set(params.get('backbones').split(','));
  for (const cb of form.querySelectorAll('input[name=backbones]')) cb.checked = want.has(cb.value);
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

function render(data) {
  const panels = data.backbones || [];
  const ok = panels.filter((p) => p.available);
  const bad = panels.filter((p) => !p.available);
  const colours = Object.fromEntries(ok.map((p, i) => [p.backbone, palette(i)]));
  const rows = ok.map((p) => [p, metrics(p)]);
  const pLabel = rows.length ? rows[0][1].precisionLabel : 'precision@10';
  const th = (text, title) => h('th', { scope: 'col', title }, text);
  const best = (key, hi = true) => {
    const vals = rows.map(([, m]) => m[key]).filter((v) => typeof v === 'number');
    return vals.length ? (hi ? Math.max(...vals) : Math.min(...vals)) : null;
  };
  const bests = { silBest: best('silBest'), ari: best('ari'), nmi: best('nmi'), precision: best('precision'), perImage: best('perImage', false) };
  const cell = (m, key, digits = 3, suffix = '') => h('td', { class: 'num' + (m[key] !== null && m[key] === bests[key] && rows.length > 1 ? ' best' : '') },
    m[key] === null || m[key] === undefined ? '—' : fmt(m[key], digits) + suffix);
  if (rows.length) {
    table.replaceChildren(h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, th('Backbone'), th('Dim'), th('Images'), th('Best k', 'k with the highest silhouette'),
        th('Silhouette', 'mean silhouette at the best k'), th('ARI', 'adjusted Rand index of k-means clusters vs labels'),
        th('NMI', 'normalised mutual information of clusters vs labels'), th(pLabel, 'share of the nearest neighbours with the same label'),
        th('ms / image', 'model time per image when embedded'), th('Embed total'))),
      h('tbody', {}, rows.map(([p, m]) => h('tr', { 'data-testid': 'compare-row', 'data-backbone': p.backbone },
        h('th', { scope: 'row' }, h('span', { class: 'swatch', style: `background:${colours[p.backbone]}` }), p.backbone),
        h('td', { class: 'num' }, fmt(m.dim)), h('td', { class: 'num' }, fmt(m.n)), h('td', { class: 'num' }, fmt(m.bestK)),
        cell(m, 'silBest'), cell(m, 'ari'), cell(m, 'nmi'), cell(m, 'precision'),
        h('td', { class: 'num' + (m.perImage === bests.perImage && rows.length > 1 ? ' best' : '') }, m.perImage == null ? '—' : (m.perImage * 1000).toFixed(1)),
        h('td', { class: 'num' }, m.total == null ? '—' : `${m.total.toFixed(1)} s`))))));
    if (rows.some(([, m]) => m.ariK)) {
      table.append(h('p', { class: 'hint' }, 'ARI and NMI compare k-means clusters (k = the number of distinct labels) with the labels; bold marks the best value.'));
    }
    if ((data.neighbour_overlap || []).length) {
      table.append(h('p', { class: 'hint' }, 'Neighbour overlap (Jaccard of the 10 nearest neighbours): ',
        data.neighbour_overlap.map((o) => `${o.a} vs ${o.b}: ${fmt(o.jaccard)}`).join('; '), '.'));
    }
  } else {
    table.replaceChildren(h('p', { class: 'muted' }, 'No backbone could be evaluated on this collection.'));
  }
  const groups = [
    { name: 'ARI', key: 'ari' }, { name: 'NMI', key: 'nmi' }, { name: pLabel, key: 'precision' }, { name: 'silhouette', key: 'silBest' },
  ].map((g) => ({ name: g.name, values: rows.map(([p, m]) => ({ series: p.backbone, value: m[g.key] })) }));
  barChart(bars, { groups, seriesColors: colours, title: 'Metrics by backbone' });
  lineChart(curves, {
    series: ok.filter((p) => p.silhouette && p.silhouette.ks).map((p) => ({ name: p.backbone, xs: p.silhouette.ks, ys: p.silhouette.scores, color: colours[p.backbone] })),
    xLabel: 'k (clusters)', yLabel: 'mean silhouette', title: 'Silhouette by k for each backbone',
  });
  // backbones the server reported as unavailable join the ones listed with the page (not embedded here)
  const ul = unavailable.querySelector('ul');
  for (const li of ul.querySelectorAll('li[data-from=api]')) li.remove();
  for (const p of bad) {
    ul.append(h('li', { 'data-testid': 'unavailable-backbone', 'data-backbone': p.backbone, 'data-from': 'api' },
      h('strong', {}, p.backbone), ': ', p.reason || 'unavailable'));
  }
  $('#unavailable-none').hidden = ul.querySelectorAll('li[data-testid=unavailable-backbone]').length > 0;
}

async function run() {
  const chosen = [...form.querySelectorAll('input[name=backbones]:checked')].map((cb) => cb.value);
  if (chosen.length < 2) { setStatus(status, 'Choose at least two backbones.', 'error'); return; }
  const q = new URLSearchParams({ backbones: chosen.join(',') });
  history.replaceState(null, '', `${location.pathname}?${q}`);
  setStatus(status, 'Computing metrics…');
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
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

form.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
if (form.querySelectorAll('input[name=backbones]:checked').length >= 2) run();
