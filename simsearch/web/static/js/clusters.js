// Clusters page: k-means over the stored vectors (k fixed or chosen by silhouette), the silhouette
// curve over a range of k that grows with the collection (log axis; click a point to cluster at
// that k) with the agreement with the labels (ARI) at each k and a marker at k = number of labels,
// one row per cluster: its label make-up, representative thumbnails (a row opens all its members),
// its name (renamed in place; "Suggest names" offers the backbone's ImageNet classes for it), "Save
// as label" (gives the label to every image of the cluster) and its export (CSV, JSON, COCO).
import { analysisResult, api, ApiError, collectionApi, jobProgressText, loginHint } from './api.js';
import { lineChart } from './chart.js';
import { exportButtons } from './export.js';
import { $, h, palette, setStatus, showJob, spaceLabel, tile } from './ui.js';
import { openViewer } from './viewer.js';

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
const actionStatus = $('#cluster-action-status');
const MAX_MEMBERS_SHOWN = 600;
let current = null;  // the clusters shown (the API's response)
let labelColours = new Map();

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
    setStatus(status, [`${data.clusters.length} clusters of ${sizes.reduce((a, b) => a + b, 0)} images (`, spaceLabel(backbone, data.backbone), ').']);
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
  current = data;
  const sil = data.silhouette || {};
  const ks = sil.ks || [];
  const scores = sil.scores || [];
  const agree = data.label_agreement || {};
  const hasAri = (agree.ari || []).some((a) => a !== null);
  const series = [{ name: 'silhouette', xs: ks, ys: scores, color: '#1f77b4' }];
  if (hasAri) series.push({ name: 'ARI vs labels', xs: ks, ys: agree.ari, color: '#2ca02c', metric: 'ARI' });
  const hl = [];
  if (sil.best_k !== undefined && sil.best_k !== null) hl.push({ x: sil.best_k, label: `best k=${sil.best_k}`, color: '#d62728' });
  if (data.k !== sil.best_k && ks.includes(data.k)) hl.push({ x: data.k, label: `k=${data.k}`, color: '#111' });
  const markers = agree.n_labels >= 2 ? [{ x: agree.n_labels, label: `${agree.n_labels} labels`, color: '#2ca02c' }] : [];
  const logX = ks.length > 1 && ks[ks.length - 1] > 20;  // the range grew past 2..10: 2..10 stay readable
  lineChart(chart, { series, xLabel: `k (clusters${logX ? ', log scale' : ''})`, yLabel: hasAri ? 'score' : 'mean silhouette',
    highlight: hl, markers, logX,
    title: `Silhouette${hasAri ? ' and agreement with the labels (ARI)' : ''} by number of clusters; best k = ${sil.best_k}` });
  for (const dot of chart.querySelectorAll('.series circle[data-k]')) pickable(dot, Number(dot.dataset.k));
  note.replaceChildren(...noteText(data, ks));
  const labels = [...new Set(data.clusters.flatMap((c) => (c.labels || []).map((e) => e.label)).filter((l) => l !== null))].sort();
  labelColours = new Map(labels.map((l, i) => [l, palette(i)]));
  list.replaceChildren(...data.clusters.map((c) => clusterRow(c)));
}

// A point of the curve: clicking it (or Enter on it) clusters at its k.
function pickable(dot, k) {
  dot.setAttribute('tabindex', '0');
  dot.setAttribute('role', 'button');
  dot.setAttribute('aria-label', `Cluster at k = ${k}`);
  dot.classList.add('pick-k');
  dot.style.cursor = 'pointer';
  const pick = () => { form.kmode.value = 'fixed'; kInput.disabled = false; kInput.value = String(k); run(); };
  dot.addEventListener('click', pick);
  dot.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); pick(); } });
}

function noteText(data, ks) {
  const sil = data.silhouette || {};
  const agree = data.label_agreement || {};
  if (!ks.length) return ['No silhouette sweep for this run.'];
  const sample = sil.sample_size < data.n_images ? ` (computed on a sample of ${sil.sample_size} images)` : '';
  const parts = [`Silhouette (blue) at k = ${ks[0]}..${ks[ks.length - 1]}, a range that grows with the collection${sample}: `
    + `higher is better, points sit closer to their own cluster than to the next. `
    + `Showing k = ${data.k}${data.k === sil.best_k ? ' (the best silhouette)' : ''}. `,
    h('span', { 'data-testid': 'pick-k-hint' }, 'Click a point of the curve to cluster at that k, or type a fixed k.')];
  if (agree.n_labels >= 2 && (agree.ari || []).some((a) => a !== null)) {
    let bestAri = 0;
    agree.ari.forEach((a, i) => { if (a !== null && a > agree.ari[bestAri]) bestAri = i; });
    const fmt = (v) => (v === null || v === undefined ? '—' : v.toFixed(2));
    parts.push(h('br'), `ARI (green): how well the clusters match the ${agree.n_labels} labels of the `
      + `${agree.n_labelled} labelled images (1 = exactly, 0 = chance); ${fmt(agree.ari_at_k)} at k = ${data.k}, `
      + `highest at k = ${ks[bestAri]} (${fmt(agree.ari[bestAri])}). The dashed line marks k = ${agree.n_labels}, the number of labels.`);
    if (ks[bestAri] !== sil.best_k) {
      parts.push(' ', h('strong', { 'data-testid': 'k-hint' }, `The labels fit k = ${ks[bestAri]} better than the silhouette's k = ${sil.best_k}: try a fixed k.`));
    }
  } else if (agree.note) {
    parts.push(h('br'), `No ARI: ${agree.note}.`);
  }
  return parts;
}

function makeup(c) {
  const mix = c.labels || [];
  if (!mix.length || (mix.length === 1 && mix[0].label === null)) {
    return h('div', { class: 'cluster-makeup muted', 'data-testid': 'cluster-makeup' }, 'no labels');
  }
  const bar = h('span', { class: 'mix-bar', 'aria-hidden': 'true' }, mix.map((e) => h('span', {
    class: e.label === null ? 'mix-none' : null, title: `${e.label ?? 'no label'}: ${e.count}`,
    style: `flex-grow:${e.count}${e.label === null ? '' : `;background:${labelColours.get(e.label)}`}` })));
  const text = mix.map((e) => h('span', { class: 'mix-item', 'data-testid': 'makeup-item', 'data-label': e.label ?? '', 'data-count': e.count },
    `${e.count} ${e.label ?? 'no label'}`));
  return h('div', { class: 'cluster-makeup', 'data-testid': 'cluster-makeup' }, bar,
    h('span', { class: 'mix-text' }, text.flatMap((t, i) => (i ? [', ', t] : [t]))));
}

function title(c) {
  return c.name ? c.name : `Cluster ${c.cluster}`;
}

function clusterRow(c) {
  const reps = c.representatives || [];
  const open = () => showMembers(c);
  const nameInput = h('input', { name: 'name', value: c.name || '', maxlength: 200, placeholder: `Cluster ${c.cluster}`,
    'aria-label': `Name of cluster ${c.cluster}`, 'data-testid': 'cluster-name-input', autocomplete: 'off' });
  const actions = h('form', { class: 'cluster-actions', 'data-testid': 'cluster-actions',
    onsubmit: (ev) => { ev.preventDefault(); rename(c, nameInput.value); } },
    nameInput,
    h('button', { type: 'submit', 'data-testid': 'cluster-rename' }, 'Rename'),
    h('button', { type: 'button', 'data-testid': 'cluster-save-label', onclick: () => saveAsLabel(c, nameInput.value) }, 'Save as label…'),
    h('button', { type: 'button', class: 'secondary', 'data-testid': 'cluster-suggest', onclick: () => suggest(c, nameInput, offers) },
      'Suggest names'));
  const offers = h('div', { class: 'name-suggestions', 'data-testid': 'name-suggestions', role: 'group',
    'aria-label': `Suggested names for cluster ${c.cluster}`, hidden: true });
  const exporting = exportButtons({ selection: () => ({ cluster: clusterRef(c) }), status: actionStatus, testid: 'cluster-export' });
  return h('li', { class: 'cluster-row', 'data-testid': 'cluster-row', 'data-cluster': c.cluster },
    h('button', { type: 'button', class: 'cluster-head', onclick: open,
      'aria-label': `Cluster ${c.cluster}${c.name ? ` (${c.name})` : ''}: ${c.size} images; show all` },
      h('span', { class: 'swatch', style: `background:${palette(c.cluster)}` }),
      h('strong', { 'data-testid': 'cluster-title' }, title(c)),
      h('span', { class: 'muted' }, ` ${c.size} image${c.size === 1 ? '' : 's'}`),
      h('span', { class: 'more' }, 'Show all →')),
    makeup(c),
    h('div', { class: 'rep-strip', 'data-testid': 'cluster-representatives' },
      reps.map((id) => tile({ id, testid: 'representative', onpick: () => openViewer(id, { ids: reps }), action: 'view' }))),
    actions, offers, exporting);
}

function clusterRef(c) {
  return { backbone: current.backbone, k: current.auto ? 'auto' : current.k, cluster: c.cluster, version: current.version };
}

// The backbone's ImageNet classes for the cluster's images: a click puts one in the name field, to
// accept (Rename) or edit first.
async function suggest(c, nameInput, offers) {
  const ref = clusterRef(c);
  const q = new URLSearchParams({ backbone: ref.backbone, k: String(ref.k), cluster: String(c.cluster), version: ref.version });
  offers.hidden = false;
  offers.replaceChildren(h('span', { class: 'muted' }, 'Classifying…'));
  try {
    const out = await api(collectionApi(`/clusters/suggestions?${q}`));
    if (!out.suggestions.length) {
      offers.replaceChildren(h('span', { class: 'muted', 'data-testid': 'name-suggestions-note' }, out.note || 'No suggestions.'));
      return;
    }
    offers.replaceChildren(h('span', { class: 'muted' }, 'Suggested (ImageNet classes): '),
      ...out.suggestions.map((s) => h('button', { type: 'button', class: 'chip', 'data-testid': 'name-suggestion', 'data-name': s.name,
        title: `${s.classes}: the top class of ${s.images} of the ${out.classified} images classified`,
        onclick: () => {
          nameInput.value = s.name;
          nameInput.focus();
          setStatus(actionStatus, `“${s.name}” is in the name field of cluster ${c.cluster}: edit it if you like, then Rename.`);
        } }, `${s.name} `, h('span', { class: 'muted' }, `${Math.round(100 * s.share)}%`))));
  } catch (err) {
    offers.replaceChildren(h('span', { class: 'error' }, err.message + loginHint(err)));
  }
}

function writeBody(c, extra) {
  return { ...clusterRef(c), ...extra };
}

async function writeFailed(err) {
  setStatus(actionStatus, err.message + loginHint(err), 'error');
  if (err instanceof ApiError && err.status === 409 && err.field === 'version') await run();  // show what is there now
}

async function rename(c, value) {
  const name = value.trim() || null;
  try {
    const out = await api(collectionApi('/clusters/name'), { method: 'POST', json: writeBody(c, { name }) });
    c.name = out.name;
    const row = list.querySelector(`[data-testid=cluster-row][data-cluster="${c.cluster}"]`);
    row.replaceWith(clusterRow(c));
    setStatus(actionStatus, out.name ? `Cluster ${c.cluster} is now “${out.name}”.` : `Cluster ${c.cluster} has no name now.`);
  } catch (err) {
    await writeFailed(err);
  }
}

async function saveAsLabel(c, value) {
  const mix = c.labels || [];
  const label = value.trim() || c.name || (mix[0] && mix[0].label) || '';
  if (!label) { setStatus(actionStatus, `Type the label for cluster ${c.cluster} in its name field first.`, 'error'); return; }
  const now = mix.map((e) => `${e.count} ${e.label ?? 'without a label'}`).join(', ');
  const question = `Give all ${c.size} images of ${title(c)} the label “${label}”?\n\nTheir labels now: ${now}. They will be replaced.`;
  if (!window.confirm(question)) { setStatus(actionStatus, 'Nothing was changed.'); return; }
  try {
    const out = await api(collectionApi('/clusters/label'), { method: 'POST', json: writeBody(c, { label }) });
    await run();
    setStatus(actionStatus, `Saved: ${out.updated} image${out.updated === 1 ? '' : 's'} now labelled “${out.label}”.`);
  } catch (err) {
    await writeFailed(err);
  }
}

function showMembers(c) {
  const members = c.members || [];
  $('#members-title').textContent = `${title(c)}: ${members.length} image${members.length === 1 ? '' : 's'}`
    + (members.length > MAX_MEMBERS_SHOWN ? ` (first ${MAX_MEMBERS_SHOWN} shown)` : '');
  const grid = $('#members');
  const searchBase = location.pathname.replace(/\/clusters$/, '/search');
  const shown = members.slice(0, MAX_MEMBERS_SHOWN);
  grid.replaceChildren(...shown.map((id) => tile({ id, testid: 'member',
    onpick: () => { location.href = `${searchBase}?image_id=${id}`; }, onview: () => openViewer(id, { ids: shown }) })));
  dialog.showModal();
}

dialog.addEventListener('click', (ev) => { if (ev.target === dialog) dialog.close(); });
form.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
backbone.addEventListener('change', run);
run();
