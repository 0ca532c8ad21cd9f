// Clusters page: k-means over the stored vectors (k fixed or chosen by silhouette), the silhouette
// curve, one row of representative thumbnails per cluster; a row opens all its members.
import { analysisResult, collectionApi, jobProgressText } from './api.js';
import { lineChart } from './chart.js';
import { $, h, palette, setStatus, showJob, tile } from './ui.js';

const form = $('#clusters-form');
const backbone = $('#clusters-backbone');
const kInput = $('#clusters-k');
const status = $('#clusters-status');
const bar = $('#clusters-progress');
let pending = null; // the AbortController of the run in progress
const chart = $('#silhouette-chart');
const note = $('#silhouette-note');
const list = $('#clusters');
const dialog = $('#members-dialog');
const MAX_MEMBERS_SHOWN = 600;

for (const r of form.querySelectorAll('input[name=kmode]')) {
  r.addEventListener('change', () => { kInput.disabled = form.kmode.value !== 'fixed'; });
}
const params = new URLSearchParams(location.search);
if (params.get('backbone')) backbone.value = params.get('backbone');
if (params.get('k') && params.get('k') !== 'auto') {
  form.kmode.value = 'fixed';
  kInput.disabled = false;
  kInput.value = params.get('k');
}

async function run() {
  if (!backbone.value) return;
  const k = form.kmode.value === 'fixed' ? String(parseInt(kInput.value, 10)) : 'auto';
  const q = new URLSearchParams({ backbone: backbone.value, k });
  history.replaceState(null, '', `${location.pathname}?${q}`);
  setStatus(status, 'Clustering…');
  if (pending) pending.abort();
  const mine = pending = new AbortController();
  form.querySelector('button[type=submit]').disabled = true;
  list.setAttribute('aria-busy', 'true');
  try {
    const data = await analysisResult(collectionApi(`/clusters?${q}`), {
      signal: mine.signal,
      onProgress: (job) => { setStatus(status, jobProgressText(job, 'Clustering')); showJob(bar, job); },
    });
    showJob(bar, null);
    draw(data);
    const sizes = data.clusters.map((c) => c.size);
    setStatus(status, `${data.clusters.length} clusters of ${sizes.reduce((a, b) => a + b, 0)} images (${data.backbone}).`);
  } catch (err) {
    if (err.name === 'AbortError') return;  // a newer run replaced this one
    showJob(bar, null);
    setStatus(status, err.message, 'error');
  } finally {
    if (pending === mine) {
      pending = null;
      form.querySelector('button[type=submit]').disabled = false;
      list.removeAttribute('aria-busy');
    }
  }
}

function draw(data) {
  const sil = data.silhouette || {};
  const ks = sil.ks || [];
  const scores = sil.scores || [];
  const hl = [];
  if (sil.best_k !== undefined && sil.best_k !== null) hl.push({ x: sil.best_k, label: `best k=${sil.best_k}`, color: '#d62728' });
  if (data.k !== sil.best_k && ks.includes(data.k)) hl.push({ x: data.k, label: `k=${data.k}`, color: '#111' });
  lineChart(chart, { series: [{ name: 'silhouette', xs: ks, ys: scores, color: '#1f77b4' }], xLabel: 'k (clusters)',
    yLabel: 'mean silhouette', highlight: hl, title: `Silhouette score by number of clusters; best k = ${sil.best_k}` });
  note.textContent = ks.length
    ? `Higher is better: points sit closer to their own cluster than to the next. Showing k = ${data.k}${data.k === sil.best_k ? ' (the best)' : ''}.`
    : 'No silhouette sweep for this run.';
  list.replaceChildren(...data.clusters.map((c) => clusterRow(c)));
}

function clusterRow(c) {
  const reps = c.representatives || [];
  const labelMix = c.labels ? Object.entries(c.labels).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([l, n]) => `${n} ${l}`).join(', ') : '';
  const open = () => showMembers(c);
  return h('li', { class: 'cluster-row', 'data-testid': 'cluster-row', 'data-cluster': c.cluster },
    h('button', { type: 'button', class: 'cluster-head', onclick: open, 'aria-label': `Cluster ${c.cluster}: ${c.size} images; show all` },
      h('span', { class: 'swatch', style: `background:${palette(c.cluster)}` }),
      h('strong', {}, `Cluster ${c.cluster}`),
      h('span', { class: 'muted' }, ` ${c.size} image${c.size === 1 ? '' : 's'}${labelMix ? ' · ' + labelMix : ''}`),
      h('span', { class: 'more' }, 'Show all →')),
    h('div', { class: 'rep-strip', 'data-testid': 'cluster-representatives' },
      reps.map((id) => tile({ id, testid: 'representative', onpick: open }))));
}

function showMembers(c) {
  const members = c.members || [];
  $('#members-title').textContent = `Cluster ${c.cluster}: ${members.length} image${members.length === 1 ? '' : 's'}`
    + (members.length > MAX_MEMBERS_SHOWN ? ` (first ${MAX_MEMBERS_SHOWN} shown)` : '');
  const grid = $('#members');
  const searchBase = location.pathname.replace(/\/clusters$/, '/search');
  grid.replaceChildren(...members.slice(0, MAX_MEMBERS_SHOWN).map((id) => tile({ id, testid: 'member',
    onpick: () => { location.href = `${searchBase}?image_id=${id}`; } })));
  dialog.showModal();
}

dialog.addEventListener('click', (ev) => { if (ev.target === dialog) dialog.close(); });
form.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
backbone.addEventListener('change', run);
run();
