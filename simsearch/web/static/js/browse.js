// Collection page: a paged thumbnail grid, sorted and filtered on the server (label, path text,
// file size, date added, ingest job); the state lives in the URL. A tile opens the image viewer;
// its box selects it, for labelling, removing or exporting several images at once (selection.js).
import { api, collectionApi } from './api.js';
import { basename, $, h, setStatus, tile } from './ui.js';
import { openViewer } from './viewer.js';
import { Selection } from './selection.js';

const grid = $('#browse-grid');
const status = $('#browse-status');
const form = $('#browse-filter');
const labelSel = $('#label-filter');
const pathInput = $('#path-filter');
const sortSel = $('#sort');
const minKb = $('#min-kb');
const maxKb = $('#max-kb');
const after = $('#added-after');
const before = $('#added-before');
const runSel = $('#run-filter');
const perPageSel = $('#per-page');
const prev = $('#prev-page');
const next = $('#next-page');
const info = $('#page-info');
const KB = 1024;
const FILTERS = ['label', 'labelled', 'path', 'sort', 'min_size', 'max_size', 'added_after', 'added_before', 'run'];

let state = fromUrl(location.search);
let shown = [];  // the images on the page, in order
let controller;

function fromUrl(search) {
  const p = new URLSearchParams(search);
  const out = { page: Math.max(1, parseInt(p.get('page') || '1', 10) || 1), per_page: parseInt(p.get('per_page') || '48', 10) || 48 };
  for (const key of FILTERS) out[key] = p.get(key) || '';
  return out;
}

function ensureOption(sel, value, text) {
  if (value && ![...sel.options].some((o) => o.value === value && !o.dataset.unlabelled)) sel.append(h('option', { value }, text || value));
}

function syncControls() {
  ensureOption(labelSel, state.label);
  ensureOption(runSel, state.run, `#${state.run}`);
  ensureOption(perPageSel, String(state.per_page));
  if (state.labelled === 'false') labelSel.selectedIndex = [...labelSel.options].findIndex((o) => o.dataset.unlabelled);
  else labelSel.value = state.label;
  pathInput.value = state.path;
  sortSel.value = [...sortSel.options].some((o) => o.value === state.sort) ? state.sort : 'id';
  minKb.value = state.min_size ? String(Math.round(Number(state.min_size) / KB)) : '';
  maxKb.value = state.max_size ? String(Math.round(Number(state.max_size) / KB)) : '';
  after.value = state.added_after.slice(0, 10);
  before.value = state.added_before.slice(0, 10);
  runSel.value = state.run;
  perPageSel.value = String(state.per_page);
  const more = $('[data-testid=more-filters]');
  if (state.min_size || state.max_size || state.added_after || state.added_before || state.run) more.open = true;
}

// The controls -> state (a change of filter or order goes back to page 1).
function readControls() {
  const opt = labelSel.selectedOptions[0];
  const unlabelled = Boolean(opt && opt.dataset.unlabelled);
  const kb = (input) => (input.value !== '' && Number(input.value) >= 0 ? String(Math.round(Number(input.value) * KB)) : '');
  Object.assign(state, {
    label: unlabelled ? '' : labelSel.value, labelled: unlabelled ? 'false' : '', path: pathInput.value.trim(),
    sort: sortSel.value === 'id' ? '' : sortSel.value, min_size: kb(minKb), max_size: kb(maxKb),
    added_after: after.value, added_before: before.value, run: runSel.value, page: 1,
  });
  if (state.max_size) state.max_size = String(Number(state.max_size) + KB - 1);  // "to 200 KB": up to its last byte
  state.per_page = parseInt(perPageSel.value, 10);
}

function query() {
  const q = new URLSearchParams({ page: state.page, per_page: state.per_page });
  for (const key of FILTERS) if (state[key]) q.set(key, state[key]);
  return q;
}

async function load(push = false) {
  if (controller) controller.abort();
  controller = new AbortController();
  const q = query();
  if (push) {
    const url = new URLSearchParams(q);
    if (state.per_page === 48) url.delete('per_page');
    if (state.page === 1) url.delete('page');
    history.pushState(null, '', `${location.pathname}${url.toString() ? '?' + url : ''}`);
  }
  setStatus(status, 'Loading…');
  try {
    const data = await api(collectionApi(`/images?${q}`), { signal: controller.signal });
    shown = data.images || [];
    const pages = data.pages || Math.max(1, Math.ceil(data.total / data.per_page));
    grid.replaceChildren(...shown.map(item));
    info.textContent = `Page ${data.page} of ${pages}`;
    prev.disabled = data.page <= 1;
    next.disabled = data.page >= pages;
    const first = data.total ? (data.page - 1) * data.per_page + 1 : 0;
    setStatus(status, `${first}–${first + shown.length - (shown.length ? 1 : 0)} of ${data.total} images`);
    if (!shown.length) grid.append(h('p', { class: 'muted', 'data-testid': 'no-images' }, filtered() ? 'No images match these filters.' : 'No images yet.'));
  } catch (err) {
    if (err.name !== 'AbortError') {
      setStatus(status, err.message, 'error');
      const bad = err.field && { min_size: minKb, max_size: maxKb, added_after: after, added_before: before, path: pathInput, run: runSel }[err.field];
      if (bad) bad.setAttribute('aria-invalid', 'true');
    }
  }
}

function filtered() {
  return FILTERS.some((key) => key !== 'sort' && state[key]);
}

// One tile: the thumbnail (opens the viewer), a box to select it, and its file name (the first
// of its paths; the title shows the whole path and how many files have these bytes).
function item(it) {
  const picked = selection.has(it.id);
  const name = basename(it.path);
  const box = h('input', { type: 'checkbox', class: 'pick', 'data-testid': 'pick', 'aria-label': `Select ${name || 'image ' + it.id}` });
  box.checked = picked;
  box.addEventListener('click', (ev) => selection.clicked(it.id, box.checked, ev.shiftKey));
  const ids = () => shown.map((x) => x.id);
  const wrap = h('div', { class: 'browse-item' + (picked ? ' picked' : ''), 'data-testid': 'browse-item', 'data-id': it.id },
    tile({ ...it, files: it.file_count, onpick: () => openViewer(it.id, { ids: ids() }), action: 'view' }),
    h('label', { class: 'pick-wrap', title: 'Select' }, box),
    h('span', { class: 'fname', 'data-testid': 'tile-name', title: it.file_count > 1 ? `${it.path} (and ${it.file_count - 1} more file${it.file_count > 2 ? 's' : ''})` : it.path }, name));
  return wrap;
}

const selection = new Selection({
  order: () => shown.map((x) => x.id),
  redraw: () => {
    for (const el of grid.querySelectorAll('[data-testid=browse-item]')) {
      const on = selection.has(Number(el.dataset.id));
      el.classList.toggle('picked', on);
      el.querySelector('input.pick').checked = on;
    }
  },
  reload: () => load(false),
  labelled: (label) => ensureOption(labelSel, label),
});

// A label changed (or the image was deleted) in the viewer: its tile shows it at once.
window.addEventListener('simsearch:image-changed', (ev) => {
  const old = grid.querySelector(`[data-testid=browse-item][data-id="${ev.detail.id}"]`);
  const at = shown.findIndex((x) => x.id === ev.detail.id);
  if (at >= 0) shown[at] = { ...shown[at], ...ev.detail };
  if (old && at >= 0) old.replaceWith(item(shown[at]));
});

let typing;
pathInput.addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(() => { readControls(); load(true); }, 350);
});
// Enter in the path box (the form has no submit button, so it would not submit by itself)
pathInput.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter') { ev.preventDefault(); clearTimeout(typing); readControls(); load(true); }
});
form.addEventListener('submit', (ev) => { ev.preventDefault(); clearTimeout(typing); readControls(); load(true); });
form.addEventListener('change', (ev) => {
  if (ev.target === pathInput) return;  // typed: handled above
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  readControls();
  load(true);
});
$('#clear-filters').addEventListener('click', () => {
  state = { page: 1, per_page: state.per_page, ...Object.fromEntries(FILTERS.map((k) => [k, ''])) };
  syncControls();
  load(true);
});
prev.addEventListener('click', () => { state.page -= 1; load(true); window.scrollTo(0, 0); });
next.addEventListener('click', () => { state.page += 1; load(true); window.scrollTo(0, 0); });
window.addEventListener('popstate', () => { state = fromUrl(location.search); syncControls(); load(false); });
syncControls();
load(false);
