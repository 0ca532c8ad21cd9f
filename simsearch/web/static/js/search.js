// Search page: drop or pick an image -> POST search; click a result -> similar-by-id; a result's
// ⤢ button (or the query image, when it is in the collection) opens the image viewer. Drag a box
// on the query image (or in the viewer) to search by that region of it (POST search with `box`;
// for an image of the collection, its file is sent); "Whole image" goes back. + and − on a result
// make it a positive or negative example (the query itself is the first positive): POST
// search/examples, with the chips of the examples and a threshold slider (js/examples.js).
import { api, collectionApi, thumbUrl } from './api.js';
import { attachBoxDrag, formatBox, parseBox } from './boxdrag.js';
import { Examples, examplesQuery, scoreTitle } from './examples.js';
import { exportButtons } from './export.js';
import { $, basename, h, setStatus, spaceLabel, tile } from './ui.js';
import { openViewer } from './viewer.js';

const form = $('#search-form');
const fileInput = $('#query-file');
const zone = $('#dropzone');
const results = $('#results');
const status = $('#search-status');
const preview = $('#query-preview');
const backbone = $('#search-backbone');
const kSel = $('#search-k');
const wholeBtn = $('#whole-image');
const threshold = $('#search-threshold');
const thresholdOut = $('#threshold-value');
const examples = new Examples({ lists: { like: $('[data-testid=chips-like]'), unlike: $('[data-testid=chips-unlike]') },
  panel: $('#examples-panel'), onchange: () => examplesChanged() });
let lastQuery = null; // {kind: 'file', file, box} | {kind: 'id', id, box}
let previewUrl = null;
let controller = null;
let shownIds = [];  // the results shown, in order: what "Export" exports
const exportRow = $('#results-export');
exportRow.replaceChildren(exportButtons({ selection: () => (shownIds.length ? { image_ids: shownIds } : null),
  status: $('#results-export-status'), testid: 'results-export', label: 'Export the results' }));
const viewerOptions = (ids = []) => ({ ids, onSearch: (from) => searchById(from, true),
  onSearchRegion: (from, box) => searchById(from, true, box) });
const boxDrag = attachBoxDrag(preview.querySelector('img'), { testid: 'query-box', onBox: (box) => {
  if (lastQuery?.kind === 'file') searchByFile(lastQuery.file, box);
  else if (lastQuery?.kind === 'id') searchById(lastQuery.id, true, box);
} });

function showPreview(src, caption, imageId = null, box = null) {
  preview.hidden = false;
  const img = preview.querySelector('img');
  img.classList.toggle('viewable', imageId !== null);
  img.title = (imageId !== null ? 'Click to view the full image; d' : 'D') + 'rag a box to search by a part of it';
  img.onclick = imageId !== null ? () => openViewer(imageId, viewerOptions()) : null;
  if (img.getAttribute('src') !== src) img.src = src;
  preview.querySelector('figcaption').textContent = caption + (box ? ' (the region in the box)' : '');
  boxDrag.set(box);
  wholeBtn.hidden = !box;
}

// A result tile with its "more like this" / "less like this" buttons.
function resultTile(r, view) {
  const el = tile({ id: r.image_id, label: r.label, path: r.path, score: r.score, percentile: r.percentile, files: r.file_count,
    onpick: (id) => searchById(id, true), onview: view, testid: 'result' });
  const name = basename(r.path) || `image ${r.image_id}`;
  el.append(h('div', { class: 'tile-examples' },
    h('button', { type: 'button', class: 'more', 'data-testid': 'more-like', title: 'More like this', 'aria-label': `${name}: more like this`,
      onclick: () => addExample('like', r.image_id, basename(r.path)) }, '+'),
    h('button', { type: 'button', class: 'less', 'data-testid': 'less-like', title: 'Less like this', 'aria-label': `${name}: less like this`,
      onclick: () => addExample('unlike', r.image_id, basename(r.path)) }, '−')));
  if (r.like !== undefined) {  // a search with examples: what its score is made of
    const badge = el.querySelector('.score');
    if (badge) badge.title = scoreTitle(r);
    el.querySelector('.tile').classList.toggle('pushed', Boolean(r.penalty));
  }
  return el;
}

// Results below the threshold slider's percentile are hidden (a search with examples leaves them
// out on the server already).
function render(data, what) {
  const pct = minPercentile();
  const hits = (data.results || []).filter((r) => !pct || r.percentile === null || r.percentile === undefined || r.percentile >= pct);
  const ids = hits.map((r) => r.image_id);
  shownIds = ids;
  exportRow.hidden = !ids.length;
  const view = (id) => openViewer(id, viewerOptions(ids));
  results.replaceChildren(...hits.map((r) => resultTile(r, view)));
  const counts = {};
  for (const r of hits) counts[r.label || 'no label'] = (counts[r.label || 'no label'] || 0) + 1;
  const summary = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([l, n]) => `${n} ${l}`).join(', ');
  const cut = pct ? `; results below ${pct}% hidden` : '';
  setStatus(status, hits.length ? [`${hits.length} most ${what} (`, spaceLabel(backbone, data.backbone), `)${summary ? ': ' + summary : ''}${cut}.`]
    : `No results${pct ? ` at or above ${pct}%` : ''}.`);
}

function begin() {
  if (controller) controller.abort();
  controller = new AbortController();
  results.setAttribute('aria-busy', 'true');
  return controller.signal;
}

async function searchByFile(file, box = null) {
  if (!file) return;
  examples.clear();
  const same = lastQuery?.kind === 'file' && lastQuery.file === file;
  lastQuery = { kind: 'file', file, box };
  if (!same) {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
  }
  showPreview(previewUrl, file.name, null, box);
  const q = new URLSearchParams({ k: kSel.value, filename: file.name });
  if (backbone.value) q.set('backbone', backbone.value);
  if (box) q.set('box', formatBox(box));
  const what = box ? `the region of ${file.name}` : file.name;
  setStatus(status, `Embedding ${what} and searching…`);
  try {
    const data = await api(`${collectionApi('/search')}?${q}`, { method: 'POST', file, signal: begin() });
    render(data, `similar to ${what}`);
    history.replaceState(null, '', location.pathname);
  } catch (err) {
    if (err.name !== 'AbortError') { results.replaceChildren(); setStatus(status, err.message, 'error'); }
  } finally {
    results.removeAttribute('aria-busy');
  }
}

// A region of an image of the collection: its file (the thumbnail when the original cannot be
// had) is uploaded with the box; the image itself is left out of the results.
async function searchRegionOf(id, box, push) {
  const q = new URLSearchParams({ k: String(Number(kSel.value) + 1), filename: `image-${id}`, box: formatBox(box) });
  if (backbone.value) q.set('backbone', backbone.value);
  setStatus(status, `Searching by the region of image ${id}…`);
  showPreview(thumbUrl(id), `image ${id}`, id, box);
  const signal = begin();
  try {
    let blob;
    for (const url of [`/api/images/${id}/file`, thumbUrl(id)]) {
      const resp = await fetch(url, { credentials: 'same-origin', signal });
      if (resp.ok) { blob = await resp.blob(); break; }
    }
    if (!blob) throw new Error(`image ${id} could not be loaded`);
    const file = new File([blob], `image-${id}`, { type: blob.type && blob.type.startsWith('image/') ? blob.type : 'application/octet-stream' });
    const data = await api(`${collectionApi('/search')}?${q}`, { method: 'POST', file, signal });
    data.results = (data.results || []).filter((r) => r.image_id !== id).slice(0, Number(kSel.value));
    render(data, `similar to the region of image ${id}`);
    const url = `${location.pathname}?image_id=${id}&box=${formatBox(box)}`;
    if (push) history.pushState({ id }, '', url); else history.replaceState({ id }, '', url);
  } catch (err) {
    if (err.name !== 'AbortError') { results.replaceChildren(); setStatus(status, err.message, 'error'); }
  } finally {
    results.removeAttribute('aria-busy');
  }
}

async function searchById(id, push, box = null) {
  examples.clear();
  lastQuery = { kind: 'id', id, box };
  if (box) return searchRegionOf(id, box, push);
  const q = new URLSearchParams({ k: kSel.value });
  if (backbone.value) q.set('backbone', backbone.value);
  setStatus(status, `Searching from image ${id}…`);
  showPreview(thumbUrl(id), `image ${id}`, id);
  try {
    const data = await api(`/api/images/${id}/similar?${q}`, { signal: begin() });
    const qimg = data.query || {};
    if (lastQuery?.kind === 'id' && lastQuery.id === id) lastQuery.name = basename(qimg.path) || undefined;
    showPreview(thumbUrl(id), [qimg.label, basename(qimg.path)].filter(Boolean).join(' · ') || `image ${id}`, id);
    render(data, `similar to ${basename(qimg.path) || `image ${id}`}`);
    const url = `${location.pathname}?image_id=${id}`;
    if (push) history.pushState({ id }, '', url); else history.replaceState({ id }, '', url);
    window.scrollTo({ top: 0, behavior: 'smooth' });
  } catch (err) {
    if (err.name !== 'AbortError') { results.replaceChildren(); setStatus(status, err.message, 'error'); }
  } finally {
    results.removeAttribute('aria-busy');
  }
}

// ---- several examples ----

function minPercentile() {
  return Number(threshold.value) || 0;
}

function showThreshold() {
  thresholdOut.value = minPercentile() ? `${minPercentile()}%` : 'off';
}

// The query searched so far becomes the first positive example.
function seed() {
  if (examples.size) return;
  if (lastQuery?.kind === 'id') examples.add('like', { id: lastQuery.id, name: lastQuery.name });
  else if (lastQuery?.kind === 'file') examples.add('like', { file: lastQuery.file });
}

function addExample(kind, id, name) {
  seed();
  examples.add(kind, { id, name });
  searchExamples();
}

// After a chip's removal: one positive left is the plain search by it.
function examplesChanged() {
  if (!examples.size) {
    lastQuery = null;
    results.replaceChildren();
    setStatus(status, 'No examples left: choose an image to find similar ones.');
    history.replaceState(null, '', location.pathname);
    return;
  }
  if (!examples.several && examples.like.length) {
    const [only] = examples.like;
    if (only.file) searchByFile(only.file);
    else searchById(only.id, false);
    return;
  }
  searchExamples();
}

async function searchExamples() {
  const request = examples.request({ k: kSel.value, backbone: backbone.value, minPercentile: minPercentile() });
  const what = `like ${examples.describe('like')}` + (examples.unlike.length ? `, least like ${examples.describe('unlike')}` : '');
  setStatus(status, `Searching for images ${what}…`);
  try {
    const data = await api(collectionApi('/search/examples'), { ...request, signal: begin() });
    render(data, what);
    const q = examplesQuery(examples, minPercentile());
    history.replaceState(null, '', q ? `${location.pathname}?${q}` : location.pathname);
  } catch (err) {
    if (err.name !== 'AbortError') { results.replaceChildren(); setStatus(status, err.message, 'error'); }
  } finally {
    results.removeAttribute('aria-busy');
  }
}

function rerun() {
  if (examples.size) searchExamples();
  else if (lastQuery?.kind === 'file') searchByFile(lastQuery.file, lastQuery.box);
  else if (lastQuery?.kind === 'id') searchById(lastQuery.id, false, lastQuery.box);
}

threshold.addEventListener('input', showThreshold);
threshold.addEventListener('change', () => {
  showThreshold();
  rerun();
});
$('#examples-clear').addEventListener('click', () => {
  const first = examples.like[0];
  examples.clear();
  if (first?.file) searchByFile(first.file);
  else if (first) searchById(first.id, false);
  else examplesChanged();
});

fileInput.addEventListener('change', () => searchByFile(fileInput.files[0]));
form.addEventListener('submit', (ev) => ev.preventDefault());
for (const el of [backbone, kSel]) {
  el.addEventListener('change', rerun);
}
wholeBtn.addEventListener('click', () => {
  if (lastQuery?.kind === 'file') searchByFile(lastQuery.file);
  else if (lastQuery?.kind === 'id') searchById(lastQuery.id, true);
});
['dragenter', 'dragover'].forEach((t) => zone.addEventListener(t, (ev) => { ev.preventDefault(); zone.classList.add('over'); }));
['dragleave', 'drop'].forEach((t) => zone.addEventListener(t, () => zone.classList.remove('over')));
zone.addEventListener('drop', (ev) => {
  ev.preventDefault();
  const file = [...(ev.dataTransfer?.files || [])].find((f) => f.type.startsWith('image/')) || ev.dataTransfer?.files?.[0];
  if (file) searchByFile(file);
});
window.addEventListener('popstate', () => {
  const params = new URLSearchParams(location.search);
  const id = params.get('image_id');
  if (id) searchById(parseInt(id, 10), false, parseBox(params.get('box')));
});
const params = new URLSearchParams(location.search);
const initial = params.get('image_id');
const idList = (text) => (text || '').split(',').filter((v) => /^\d+$/.test(v)).map(Number);
if (initial && /^\d+$/.test(initial)) searchById(parseInt(initial, 10), false, parseBox(params.get('box')));
else if (idList(params.get('like')).length) {  // a search with examples, shared by its URL
  const pct = Number(params.get('min_percentile'));
  if (pct > 0) threshold.value = String(pct);
  showThreshold();
  for (const id of idList(params.get('like'))) examples.add('like', { id });
  for (const id of idList(params.get('unlike'))) examples.add('unlike', { id });
  searchExamples();
}
