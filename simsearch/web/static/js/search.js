// Search page: drop or pick an image -> POST search; click a result -> similar-by-id; a result's
// ⤢ button (or the query image, when it is in the collection) opens the image viewer.
import { api, collectionApi, thumbUrl } from './api.js';
import { $, basename, setStatus, tile } from './ui.js';
import { openViewer } from './viewer.js';

const form = $('#search-form');
const fileInput = $('#query-file');
const zone = $('#dropzone');
const results = $('#results');
const status = $('#search-status');
const preview = $('#query-preview');
const backbone = $('#search-backbone');
const kSel = $('#search-k');
let lastQuery = null; // {kind: 'file', file} | {kind: 'id', id}
let previewUrl = null;
let controller = null;

function showPreview(src, caption, imageId = null) {
  preview.hidden = false;
  const img = preview.querySelector('img');
  img.classList.toggle('viewable', imageId !== null);
  img.title = imageId !== null ? 'View the full image' : '';
  img.onclick = imageId !== null ? () => openViewer(imageId, { onSearch: (from) => searchById(from, true) }) : null;
  preview.querySelector('img').src = src;
  preview.querySelector('figcaption').textContent = caption;
}

function render(data, what) {
  const hits = data.results || [];
  const ids = hits.map((r) => r.image_id);
  const view = (id) => openViewer(id, { ids, onSearch: (from) => searchById(from, true) });
  results.replaceChildren(...hits.map((r) => tile({ id: r.image_id, label: r.label, path: r.path, score: r.score, percentile: r.percentile,
    onpick: (id) => searchById(id, true), onview: view, testid: 'result' })));
  const counts = {};
  for (const r of hits) counts[r.label || 'no label'] = (counts[r.label || 'no label'] || 0) + 1;
  const summary = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([l, n]) => `${n} ${l}`).join(', ');
  setStatus(status, hits.length ? `${hits.length} most similar to ${what} (${data.backbone})${summary ? ': ' + summary : ''}.` : 'No results.');
}

function begin() {
  if (controller) controller.abort();
  controller = new AbortController();
  results.setAttribute('aria-busy', 'true');
  return controller.signal;
}

async function searchByFile(file) {
  if (!file) return;
  lastQuery = { kind: 'file', file };
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  showPreview(previewUrl, file.name);
  const q = new URLSearchParams({ k: kSel.value, filename: file.name });
  if (backbone.value) q.set('backbone', backbone.value);
  setStatus(status, `Embedding ${file.name} and searching…`);
  try {
    const data = await api(`${collectionApi('/search')}?${q}`, { method: 'POST', file, signal: begin() });
    render(data, file.name);
    history.replaceState(null, '', location.pathname);
  } catch (err) {
    if (err.name !== 'AbortError') { results.replaceChildren(); setStatus(status, err.message, 'error'); }
  } finally {
    results.removeAttribute('aria-busy');
  }
}

async function searchById(id, push) {
  lastQuery = { kind: 'id', id };
  const q = new URLSearchParams({ k: kSel.value });
  if (backbone.value) q.set('backbone', backbone.value);
  setStatus(status, `Searching from image ${id}…`);
  showPreview(thumbUrl(id), `image ${id}`, id);
  try {
    const data = await api(`/api/images/${id}/similar?${q}`, { signal: begin() });
    const qimg = data.query || {};
    showPreview(thumbUrl(id), [qimg.label, basename(qimg.path)].filter(Boolean).join(' · ') || `image ${id}`, id);
    render(data, basename(qimg.path) || `image ${id}`);
    const url = `${location.pathname}?image_id=${id}`;
    if (push) history.pushState({ id }, '', url); else history.replaceState({ id }, '', url);
    window.scrollTo({ top: 0, behavior: 'smooth' });
  } catch (err) {
    if (err.name !== 'AbortError') { results.replaceChildren(); setStatus(status, err.message, 'error'); }
  } finally {
    results.removeAttribute('aria-busy');
  }
}

fileInput.addEventListener('change', () => searchByFile(fileInput.files[0]));
form.addEventListener('submit', (ev) => ev.preventDefault());
for (const el of [backbone, kSel]) {
  el.addEventListener('change', () => {
    if (lastQuery?.kind === 'file') searchByFile(lastQuery.file);
    else if (lastQuery?.kind === 'id') searchById(lastQuery.id, false);
  });
}
['dragenter', 'dragover'].forEach((t) => zone.addEventListener(t, (ev) => { ev.preventDefault(); zone.classList.add('over'); }));
['dragleave', 'drop'].forEach((t) => zone.addEventListener(t, () => zone.classList.remove('over')));
zone.addEventListener('drop', (ev) => {
  ev.preventDefault();
  const file = [...(ev.dataTransfer?.files || [])].find((f) => f.type.startsWith('image/')) || ev.dataTransfer?.files?.[0];
  if (file) searchByFile(file);
});
window.addEventListener('popstate', () => {
  const id = new URLSearchParams(location.search).get('image_id');
  if (id) searchById(parseInt(id, 10), false);
});
const initial = new URLSearchParams(location.search).get('image_id');
if (initial && /^\d+$/.test(initial)) searchById(parseInt(initial, 10), false);
