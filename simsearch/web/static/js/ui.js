// Small DOM helpers shared by the pages.
import { thumbUrl } from './api.js';

export function $(sel, root = document) {
  return root.querySelector(sel);
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// A space in plain words, as the page's space picker `select` names it (its option's data-title;
// its title: "internal name: explanation"); the internal name itself when no option has it.
export function spaceWords(select, name) {
  const opt = [...((select && select.options) || [])].find((o) => o.value === name);
  return { title: (opt && opt.dataset.title) || name, tip: (opt && opt.title) || name };
}

// The space's readable title, its internal name (and explanation) in the tooltip.
export function spaceLabel(select, name) {
  const w = spaceWords(select, name);
  return h('span', { class: 'space-title', 'data-space': name, title: w.tip }, w.title);
}

export function basename(path) {
  if (!path) return '';
  const parts = String(path).split(/[\\/]/);
  return parts[parts.length - 1];
}

// One thumbnail tile. `onpick` (optional) makes it a button (`action` says what it does, for
// screen readers); `onview` (optional) adds a small "view" button beside it (the tile is then
// wrapped in a <div class="tile-wrap">).
export function tile({ id, label, path, score, percentile, files, onpick, onview, action = 'find similar', testid = 'tile', lazy = true }) {
  const name = basename(path);
  const alt = [label, name].filter(Boolean).join(' · ') || `image ${id}`;
  const img = h('img', { src: thumbUrl(id), alt, loading: lazy ? 'lazy' : undefined, width: 160, height: 160, decoding: 'async' });
  const cap = h('span', { class: 'cap' },
    label === undefined ? null : label ? h('span', { class: 'lbl' }, label) : h('span', { class: 'lbl muted' }, 'no label'),
    // a percentile of the collection's neighbour similarities reads the same in every space; the cosine does not
    percentile != null ? h('span', { class: 'score', title: `cosine similarity ${score.toFixed(3)}: closer than ${percentile}% of this collection's typical top-10 neighbours` }, `${Math.round(percentile)}%`)
      : score !== undefined ? h('span', { class: 'score', title: 'cosine similarity' }, score.toFixed(3)) : null,
    // byte-identical files of this image (every path is listed in the viewer)
    files > 1 ? h('span', { class: 'copies', 'data-testid': 'copies', title: `${files} files with these bytes (the viewer lists every path)` }, `×${files}`) : null);
  const attrs = { class: 'tile', 'data-testid': testid, 'data-id': id, 'data-label': label || '', title: name };
  const el = onpick
    ? h('button', { ...attrs, type: 'button', onclick: () => onpick(id), 'aria-label': `${alt}: ${action}` }, img, cap)
    : h('figure', attrs, img, cap);
  if (!onview) return el;
  return h('div', { class: 'tile-wrap' }, el,
    h('button', { type: 'button', class: 'tile-view', 'data-testid': `${testid}-view`, 'aria-label': `${alt}: view the full image`,
      title: 'View the full image', onclick: () => onview(id) }, '⤢'));
}

// `text`: a string, or a list of strings and elements (e.g. a spaceLabel).
export function setStatus(el, text, kind = '') {
  el.replaceChildren(...(Array.isArray(text) ? text : [text ?? '']));
  el.classList.toggle('error', kind === 'error');
}

// A <progress> element following a background job (hidden when job is null or finished).
export function showJob(bar, job) {
  if (!bar) return;
  const active = job && (job.status === 'queued' || job.status === 'running');
  bar.hidden = !active;
  if (!active) return;
  if (job.status === 'queued' || !job.total) bar.removeAttribute('value');  // indeterminate
  else bar.value = Math.min(1, job.processed / job.total);
}

export function fmt(n, digits = 3) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return typeof n === 'number' ? (Number.isInteger(n) ? String(n) : n.toFixed(digits)) : String(n);
}

export function palette(i) {
  return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

// 20 distinguishable colours (Tableau 20 order, darks first).
export const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
  '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5',
];

// Space pickers (templates/ui/_backbone_select.html): "show all" reveals tune's internal variants;
// the select's tooltip follows the chosen option (its internal name and explanation).
for (const box of document.querySelectorAll('input[data-show-all]')) {
  const select = document.getElementById(box.dataset.showAll);
  box.addEventListener('change', () => {
    for (const opt of select.querySelectorAll('option[data-internal]')) opt.hidden = !box.checked;
    if (!box.checked && select.selectedOptions[0] && select.selectedOptions[0].dataset.internal) {
      select.selectedIndex = 0;
      select.dispatchEvent(new Event('change', { bubbles: true }));
    }
  });
}
for (const select of document.querySelectorAll('.space-picker select')) {
  const hint = select.parentElement.querySelector('.space-hint');
  select.addEventListener('change', () => {
    const title = select.selectedOptions[0] ? select.selectedOptions[0].title : '';
    select.title = title;
    if (hint) hint.textContent = title.slice(title.indexOf(': ') + 2);
  });
}
