// The image viewer: one image at full size (GET /api/images/<id>/file), its metadata, its label
// (edited in place: PATCH /api/images/<id>) and "search from this image". Any page can use it:
//
//   import { openViewer } from './viewer.js';       // or window.simsearchViewer.open(id) once loaded
//   openViewer(id, { ids, onSearch });
//
// `ids` (optional): the list the image belongs to (a page of results); ← and → step through it.
// `onSearch(id)` (optional): what "Search from this image" does; by default it opens the
// collection's search page for that image. Dragging a box on the image offers "Search this
// region": `onSearchRegion(id, box)` (optional; box = [x0, y0, x1, y1] fractions), by default the
// search page with `?image_id=<id>&box=x0,y0,x1,y1`. After a label change the window gets a
// `simsearch:image-changed` event whose `detail` is the image as the API now returns it.
// When the original file cannot be shown (an upload deleted after ingest, imported vectors...)
// the viewer says why and shows the thumbnail.
import { api, ApiError, enc, loginHint, request, thumbUrl } from './api.js';
import { basename, h, setStatus } from './ui.js';
import { attachBoxDrag, formatBox } from './boxdrag.js';

let dialog = null;
let els = {};
let state = { id: null, ids: [], onSearch: null, onSearchRegion: null, image: null, fit: true, token: 0 };
let region = null;  // the box dragged on the image (boxdrag.js)
const labelCache = new Map();  // collection -> its labels (for the label field's suggestions)

function stylesheet() {
  if (document.querySelector('link[data-viewer-css]')) return;
  const here = new URL(import.meta.url);
  document.head.append(h('link', { rel: 'stylesheet', href: new URL('../css/viewer.css', here).pathname, 'data-viewer-css': '' }));
}

function build() {
  stylesheet();
  els.title = h('h2', { id: 'viewer-title', class: 'viewer-title' });
  els.zoom = h('button', { type: 'button', class: 'secondary', 'data-testid': 'viewer-zoom', onclick: toggleFit }, '100 %');
  els.prev = h('button', { type: 'button', class: 'secondary', 'aria-label': 'Previous image', onclick: () => step(-1) }, '←');
  els.next = h('button', { type: 'button', class: 'secondary', 'aria-label': 'Next image', onclick: () => step(1) }, '→');
  els.original = h('a', { class: 'viewer-original', target: '_blank', rel: 'noopener', 'data-testid': 'viewer-original' }, 'Open the original');
  els.img = h('img', { class: 'viewer-img fit', alt: '', 'data-testid': 'viewer-image' });
  els.stage = h('div', { class: 'viewer-stage', 'data-testid': 'viewer-stage' }, els.img);
  els.note = h('p', { class: 'viewer-note', role: 'status', 'data-testid': 'viewer-note', hidden: true });
  els.meta = h('dl', { class: 'summary viewer-meta', 'data-testid': 'viewer-meta' });
  els.labelInput = h('input', { id: 'viewer-label', name: 'label', maxlength: 200, autocomplete: 'off', list: 'viewer-labels',
    'data-testid': 'viewer-label-input', 'aria-describedby': 'viewer-label-status' });
  els.labelList = h('datalist', { id: 'viewer-labels' });
  els.labelStatus = h('p', { id: 'viewer-label-status', class: 'hint', role: 'status', 'aria-live': 'polite', 'data-testid': 'viewer-label-status' });
  els.labelForm = h('form', { class: 'viewer-label-form', 'data-testid': 'viewer-label-form', onsubmit: (ev) => { ev.preventDefault(); saveLabel(els.labelInput.value); } },
    h('label', { for: 'viewer-label' }, 'Label'),
    h('div', { class: 'row' }, els.labelInput, els.labelList,
      h('button', { type: 'submit', 'data-testid': 'viewer-label-save' }, 'Save'),
      h('button', { type: 'button', class: 'secondary', 'data-testid': 'viewer-label-clear', onclick: () => saveLabel(null) }, 'Remove')),
    els.labelStatus);
  els.search = h('button', { type: 'button', class: 'viewer-search', 'data-testid': 'viewer-search', onclick: searchFrom }, 'Search from this image');
  els.searchRegion = h('button', { type: 'button', class: 'viewer-search', 'data-testid': 'viewer-search-region', hidden: true,
    onclick: searchRegion }, 'Search this region');
  dialog = h('dialog', { class: 'viewer', 'data-testid': 'viewer', 'aria-labelledby': 'viewer-title' },
    h('div', { class: 'viewer-bar' }, els.title, h('span', { class: 'viewer-tools' }, els.prev, els.next, els.zoom, els.original,
      h('button', { type: 'button', class: 'close', 'aria-label': 'Close', 'data-testid': 'viewer-close', onclick: close }, '×'))),
    h('div', { class: 'viewer-body' }, els.stage,
      h('aside', { class: 'viewer-side' }, els.note, els.meta, els.labelForm, els.search, els.searchRegion,
        h('p', { class: 'hint' }, 'Drag a box on the image to search by that part of it.'))));
  region = attachBoxDrag(els.img, { testid: 'viewer-region', onBox: () => { els.searchRegion.hidden = false; } });
  dialog.addEventListener('click', (ev) => { if (ev.target === dialog) close(); });
  dialog.addEventListener('keydown', (ev) => {
    if (ev.target === els.labelInput) return;
    if (ev.key === 'ArrowLeft') step(-1);
    else if (ev.key === 'ArrowRight') step(1);
  });
  els.img.addEventListener('error', () => originalFailed(state.id));
  document.body.append(dialog);
}

function toggleFit() {
  state.fit = !state.fit;
  els.img.classList.toggle('fit', state.fit);
  els.zoom.textContent = state.fit ? '100 %' : 'Fit';
  els.zoom.setAttribute('aria-pressed', String(!state.fit));
}

function step(delta) {
  const i = state.ids.indexOf(state.id);
  if (i < 0) return;
  const j = i + delta;
  if (j >= 0 && j < state.ids.length) show(state.ids[j]);
}

async function originalFailed(id) {
  if (id !== state.id) return;
  let why = 'The original file could not be loaded.';
  try {
    await request(`/api/images/${id}/file`);  // the error's message says why
    why = 'The original file is in a format this browser cannot show.';
  } catch (err) {
    if (err instanceof ApiError) why = err.message;
  }
  if (id !== state.id) return;
  els.note.textContent = `Showing the thumbnail: ${why}`;
  els.note.hidden = false;
  els.img.dataset.full = 'false';
  els.img.src = thumbUrl(id);
  els.original.hidden = true;
}

function metaRows(image) {
  const rows = [
    ['Label', image.label || '—'],
    ['Size', image.width ? `${image.width} × ${image.height} px` : '—'],
    ['File', image.path || '—'],
    // byte-identical copies: every file with this image's bytes (the first is `path`)
    ...((image.files || []).length > 1 ? [['Copies', h('ul', { class: 'paths', 'data-testid': 'viewer-paths' },
      h('li', { class: 'muted' }, `${image.files.length} files with these bytes:`),
      image.files.map((f) => h('li', { class: 'path' }, f.path)))]] : []),
    ['Collection', image.collection],
    ['Added', image.created_at ? new Date(image.created_at).toLocaleString() : '—'],
    ['Embedded by', (image.backbones || []).join(', ') || '—'],
    ...Object.entries(image.meta || {}).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]),
  ];
  if (image.status !== 'ok') rows.push(['Status', `${image.status}: ${image.error || ''}`]);
  return rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { class: k === 'File' ? 'path' : null, 'data-field': k.toLowerCase() }, v)]);
}

async function suggestLabels(collection) {
  if (!labelCache.has(collection)) {
    labelCache.set(collection, api(`/api/collections/${enc(collection)}`).then((c) => (c.labels || [])
      .map((l) => l.label).filter(Boolean)).catch(() => []));
  }
  const labels = await labelCache.get(collection);
  els.labelList.replaceChildren(...labels.map((l) => h('option', { value: l })));
}

async function show(id) {
  const token = ++state.token;
  state.id = id;
  state.image = null;
  dialog.dataset.imageId = id;
  dialog.setAttribute('aria-busy', 'true');
  els.note.hidden = true;
  els.original.hidden = false;
  region.clear();
  els.searchRegion.hidden = true;
  setStatus(els.labelStatus, '');
  els.title.textContent = `Image ${id}`;
  const i = state.ids.indexOf(id);
  els.prev.hidden = els.next.hidden = i < 0;
  els.prev.disabled = i <= 0;
  els.next.disabled = i < 0 || i >= state.ids.length - 1;
  els.img.dataset.full = 'true';
  els.img.alt = `image ${id}`;
  els.img.src = `/api/images/${id}/file`;
  els.original.href = `/api/images/${id}/file`;
  try {
    const image = await api(`/api/images/${id}`);
    if (token !== state.token) return;
    render(image);
    suggestLabels(image.collection);
  } catch (err) {
    if (token !== state.token) return;
    els.note.textContent = err.message;
    els.note.hidden = false;
  } finally {
    if (token === state.token) dialog.removeAttribute('aria-busy');
  }
}

function render(image) {
  state.image = image;
  const name = basename(image.path) || `image ${image.id}`;
  els.title.textContent = name;
  els.img.alt = [image.label, name].filter(Boolean).join(' · ');
  els.meta.replaceChildren(...metaRows(image));
  els.labelInput.value = image.label || '';
}

async function saveLabel(value) {
  const id = state.id;
  const label = value === null ? null : value.trim();
  if (label === '') { setStatus(els.labelStatus, 'Type a label (or use Remove).', 'error'); els.labelInput.focus(); return; }
  setStatus(els.labelStatus, 'Saving…');
  try {
    const image = await api(`/api/images/${id}`, { method: 'PATCH', json: { label } });
    if (id !== state.id) return;
    render(image);
    labelCache.delete(image.collection);
    suggestLabels(image.collection);
    setStatus(els.labelStatus, label === null ? 'Label removed.' : `Saved: “${image.label}”.`);
    window.dispatchEvent(new CustomEvent('simsearch:image-changed', { detail: image }));
  } catch (err) {
    setStatus(els.labelStatus, err.message + loginHint(err), 'error');
  }
}

function searchFrom() {
  const id = state.id;
  if (state.onSearch) {
    close();
    state.onSearch(id);
    return;
  }
  const collection = state.image ? state.image.collection : document.body.dataset.collection;
  location.href = `/c/${enc(collection)}/search?image_id=${id}`;
}

function searchRegion() {
  const id = state.id;
  const box = region.box;
  if (!box) return;
  if (state.onSearchRegion) {
    close();
    state.onSearchRegion(id, box);
    return;
  }
  const collection = state.image ? state.image.collection : document.body.dataset.collection;
  location.href = `/c/${enc(collection)}/search?image_id=${id}&box=${formatBox(box)}`;
}

export function openViewer(imageId, { ids = [], onSearch = null, onSearchRegion = null } = {}) {
  if (!dialog) build();
  state.ids = ids.map(Number);
  state.onSearch = onSearch;
  state.onSearchRegion = onSearchRegion;
  show(Number(imageId));
  if (!dialog.open) dialog.showModal();
  return dialog;
}

export function close() {
  if (dialog && dialog.open) dialog.close();
}

window.simsearchViewer = {
  open: openViewer,
  close,
  get imageId() { return state.id; },
  get image() { return state.image; },
};
