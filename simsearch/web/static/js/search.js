// Search page: drop or pick an image -> POST search; click a result -> similar-by-id; a result's
// ⤢ button (or the query image, when it is in the collection) opens the image viewer. Drag a box
// on the query image (or in the viewer) to search by that region of it (POST search with `box`;
// for an image of the collection, its file is sent); "Whole image" goes back.
import { api, collectionApi, thumbUrl } from './api.js';
import { attachBoxDrag, formatBox, parseBox } from './boxdrag.js';
import { exportButtons } from './export.js';
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
const wholeBtn = $('#whole-image');
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

function render(data, what) {
  const hits = data.results || [];
  const ids = hits.map((r) => r.image_id);
  shownIds = ids;
  exportRow.hidden = !ids.length;
  const view = (id) => openViewer(id, viewerOptions(ids));
  results.replaceChildren(...hits.map((r) => tile({ id: r.image_id, label: r.label, path: r.path, score: r.score, percentile: r.percentile, files: r.file_count,
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

async function searchByFile(file, box = null) {
  if (!file) return;
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
    render(data, what);
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
    render(data, `the region of image ${id}`);
    const url = `${location.pathname}?image_id=${id}&box=${formatBox(box)}`;
    if (push) history.pushState({ id }, '', url); else history.replaceState({ id }, '', url);
  } catch (err) {
    if (err.name !== 'AbortError') { results.replaceChildren(); setStatus(status, err.message, 'error'); }
  } finally {
    results.removeAttribute('aria-busy');
  }
}

async function searchById(id, push, box = null) {
  lastQuery = { kind: 'id', id, box };
  if (box) return searchRegionOf(id, box, push);
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
    if (lastQuery?.kind === 'file') searchByFile(lastQuery.file, lastQuery.box);
    else if (lastQuery?.kind === 'id') searchById(lastQuery.id, false, lastQuery.box);
  });
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
if (initial && /^\d+$/.test(initial)) searchById(parseInt(initial, 10), false, parseBox(params.get('box')));
