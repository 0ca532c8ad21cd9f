// Collection page: a paged thumbnail grid, filtered by label; the state lives in the URL. A tile
// opens the image viewer (full image, metadata, label, search from it).
import { api, collectionApi } from './api.js';
import { $, h, setStatus, tile } from './ui.js';
import { openViewer } from './viewer.js';

const grid = $('#browse-grid');
const status = $('#browse-status');
const labelSel = $('#label-filter');
const perPageSel = $('#per-page');
const prev = $('#prev-page');
const next = $('#next-page');
const info = $('#page-info');

const params = new URLSearchParams(location.search);
const state = {
  label: params.get('label') || '',
  page: Math.max(1, parseInt(params.get('page') || '1', 10) || 1),
  per_page: parseInt(params.get('per_page') || '48', 10) || 48,
};
function syncControls() {
  if (state.label && ![...labelSel.options].some((o) => o.value === state.label)) {
    labelSel.append(h('option', { value: state.label }, state.label));
  }
  if (![...perPageSel.options].some((o) => o.value === String(state.per_page))) {
    perPageSel.append(h('option', { value: state.per_page }, String(state.per_page)));
  }
  labelSel.value = state.label;
  perPageSel.value = String(state.per_page);
}
syncControls();
let controller;

async function load(push = false) {
  if (controller) controller.abort();
  controller = new AbortController();
  const q = new URLSearchParams({ page: state.page, per_page: state.per_page });
  if (state.label) q.set('label', state.label);
  if (push) {
    const url = new URLSearchParams(q);
    if (state.per_page === 48) url.delete('per_page');
    if (state.page === 1) url.delete('page');
    history.pushState(null, '', `${location.pathname}${url.toString() ? '?' + url : ''}`);
  }
  setStatus(status, 'Loading…');
  try {
    const data = await api(collectionApi(`/images?${q}`), { signal: controller.signal });
    const items = data.images || data.items || [];
    const pages = data.pages || Math.max(1, Math.ceil(data.total / data.per_page));
    grid.replaceChildren(...items.map(viewerTile));
    info.textContent = `Page ${data.page} of ${pages}`;
    prev.disabled = data.page <= 1;
    next.disabled = data.page >= pages;
    const first = data.total ? (data.page - 1) * data.per_page + 1 : 0;
    setStatus(status, `${first}–${first + items.length - (items.length ? 1 : 0)} of ${data.total} images`);
    if (!items.length) grid.append(h('p', { class: 'muted' }, state.label ? `No images labelled “${state.label}”.` : 'No images yet.'));
  } catch (err) {
    if (err.name !== 'AbortError') setStatus(status, err.message, 'error');
  }
}

function viewerTile(it) {
  const shown = () => [...grid.querySelectorAll('[data-testid=tile]')].map((t) => Number(t.dataset.id));
  return tile({ ...it, files: it.file_count, onpick: () => openViewer(it.id, { ids: shown() }), action: 'view' });
}

// A label changed in the viewer: its tile shows it at once.
window.addEventListener('simsearch:image-changed', (ev) => {
  const old = grid.querySelector(`[data-testid=tile][data-id="${ev.detail.id}"]`);
  if (old) old.replaceWith(viewerTile(ev.detail));
});

labelSel.addEventListener('change', () => { state.label = labelSel.value; state.page = 1; load(true); });
perPageSel.addEventListener('change', () => { state.per_page = parseInt(perPageSel.value, 10); state.page = 1; load(true); });
prev.addEventListener('click', () => { state.page -= 1; load(true); window.scrollTo(0, 0); });
next.addEventListener('click', () => { state.page += 1; load(true); window.scrollTo(0, 0); });
window.addEventListener('popstate', () => {
  const p = new URLSearchParams(location.search);
  state.label = p.get('label') || '';
  state.page = parseInt(p.get('page') || '1', 10) || 1;
  state.per_page = parseInt(p.get('per_page') || '48', 10) || 48;
  syncControls();
  load(false);
});
load(false);
