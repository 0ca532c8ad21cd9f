// The Spaces page: the collection's spaces, the newest tuning's candidates, the tune button (a
// background job: POST /tune, then the job is polled), "make default" and "remove" actions.
import { api, request } from './api.js';
import { $, h, setStatus, showJob, fmt } from './ui.js';

const name = document.body.dataset.collection;
const base = `/api/collections/${encodeURIComponent(name)}`;
const status = $('#tune-status');
const bar = $('#tune-progress');
const form = $('#tune-form');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const DASH = '—';
const KINDS = {
  backbone: ['computed by a network', 'vectors computed from the images by a pretrained network (it can embed new images)'],
  derived: ['tuned', 'made from the other spaces by tuning, for this collection (removable)'],
  imported: ['imported', 'vectors imported from a file: search by an image in the collection, not by a new upload'],
  internal: ['tuning variant', 'kept only as the base of a tuned space; hidden from the pages\u2019 space pickers'],
  candidate: ['candidate (not kept)', 'scored by the last tuning, then not kept'],
};
let words = { scores: {}, notMeasured: '' };

function pm(mean, std) {
  return mean === null || mean === undefined ? null : `${fmt(mean)} ± ${fmt(std)}`;
}

// A score cell: the value, or a dash that says why there is none.
function scoreCell(value, testid) {
  return value === null || value === undefined || value === DASH
    ? h('td', { 'data-testid': testid, class: 'unmeasured', title: words.notMeasured }, DASH)
    : h('td', { 'data-testid': testid, class: 'num' }, value);
}

function header(key, text) {
  const w = words.scores[key];
  return h('th', { scope: 'col', title: w ? w.explanation : undefined, class: w ? 'explained' : undefined }, text);
}

function actions(row, info) {
  const out = [];
  if (!info) return out;
  if (!info.default) {
    out.push(h('button', { type: 'button', 'data-testid': 'make-default', onclick: () => makeDefault(row.space) }, 'Make default'));
  }
  if (info.kind === 'derived') {
    out.push(h('button', { type: 'button', 'data-testid': 'remove-space', onclick: () => removeSpace(row.space) }, 'Remove'));
  }
  return out;
}

function render(data) {
  words = { scores: data.scores || {}, notMeasured: data.not_measured || '' };
  const have = new Map(data.spaces.map((s) => [s.name, s]));
  const report = data.last_tuning && data.last_tuning.report;
  const rows = [];
  const seen = new Set();
  if (report && report.mode === 'labelled') {
    for (const c of report.candidates) {
      rows.push({ space: c.space, title: c.title, explanation: c.explanation, p: pm(c.p_at_10_mean, c.p_at_10_std),
        ari: c.ari_mean == null ? null : fmt(c.ari_mean), kept: c.kept_mean == null ? null : fmt(c.kept_mean),
        time: fmt((c.seconds || 0) + (c.embed_seconds || 0), 1), chosen: c.space === report.chosen });
      seen.add(c.space);
    }
  }
  for (const s of data.spaces) {
    if (seen.has(s.name)) continue;
    rows.push({ space: s.name, title: s.title, explanation: s.explanation, p: s.cv ? pm(s.cv.p_at_10_mean, s.cv.p_at_10_std) : null,
      ari: s.cv && s.cv.ari_mean != null ? fmt(s.cv.ari_mean) : null, kept: s.cv && s.cv.kept_mean != null ? fmt(s.cv.kept_mean) : null,
      time: null, chosen: report && report.chosen === s.name });
  }
  const thead = $('#spaces-table thead');
  thead.replaceChildren(h('tr', {}, h('th', { scope: 'col' }, 'Space'), h('th', { scope: 'col' }, 'Kind'),
    header('p_at_10', 'Label precision (P@10)'), header('ari', 'Cluster agreement (ARI)'), header('kept', 'Neighbours kept'),
    header('seconds', 'Time (s)'), h('th', { scope: 'col' }, 'Default'), h('th', { scope: 'col' }, 'Actions')));
  const tbody = $('#spaces-table tbody');
  tbody.replaceChildren(...rows.map((row) => {
    const info = have.get(row.space);
    const kind = KINDS[info ? (info.internal ? 'internal' : info.kind) : 'candidate'];
    return h('tr', { 'data-testid': 'space-row', 'data-space': row.space, 'data-default': info && info.default ? 'true' : 'false',
      class: info ? '' : 'muted' },
      h('th', { scope: 'row', class: 'space-cell' },
        h('span', { class: 'space-title', 'data-testid': 'space-title' }, row.chosen ? '★ ' : '', row.title || row.space),
        h('span', { class: 'space-explanation', 'data-testid': 'space-explanation' }, row.explanation || ''),
        h('code', { class: 'space-name', title: 'the name requests and the command line use' }, row.space)),
      h('td', { title: kind[1] }, kind[0]),
      scoreCell(row.p, 'p-at-10'), scoreCell(row.ari, 'ari'), scoreCell(row.kept, 'kept'), scoreCell(row.time, 'time'),
      h('td', { 'data-testid': 'default-marker' }, info && info.default ? 'default' : ''),
      h('td', {}, ...actions(row, info)));
  }));
  const dashes = tbody.querySelectorAll('td.unmeasured').length;
  $('#spaces-dash-note').hidden = !dashes;
  $('#spaces-dash-note').textContent = `${DASH} ${words.notMeasured}.`;
  const defaultTitle = data.default_space ? (have.get(data.default_space) || {}).title || data.default_space : null;
  $('#spaces-summary').textContent = data.default_space
    ? `Default space: ${defaultTitle} (${data.default_space})${data.default_chosen ? ', chosen for this collection' : ', the settings\u2019 default'}`
    : 'No default space: searches must name one.';
  const notes = [];
  const t = data.last_tuning;
  if (t && t.status !== 'done') notes.push(`Last tuning: ${t.status}${t.message ? ' — ' + t.message : ''}`);
  if (report) {
    const chosen = (report.candidates || []).find((c) => c.space === report.chosen);
    notes.push(`Last tuning (${report.mode === 'labelled' ? 'with labels' : 'without labels'}, ${report.n_labelled} labelled images, ${report.n_labels} labels) took ${fmt(report.seconds, 1)} s; chosen: ${chosen && chosen.title ? chosen.title : report.chosen}.`);
    if (report.embedding) notes.push(`Embedding pass: ${report.embedding.images} images in ${report.embedding.spaces.length} variants, ${fmt(report.embedding.seconds, 1)} s.`);
    for (const n of report.notes || []) notes.push(n);
  }
  $('#tune-notes').replaceChildren(...notes.map((n) => h('li', {}, n)));
}

async function load() {
  try {
    render(await api(`${base}/spaces`));
  } catch (err) {
    setStatus(status, err.message, 'error');
  }
}

async function follow(statusUrl) {
  let job = await api(statusUrl);
  while (job.status === 'queued' || job.status === 'running') {
    showJob(bar, job);
    setStatus(status, job.message || job.status);
    await sleep(800);
    job = await api(statusUrl);
  }
  showJob(bar, null);
  if (job.status !== 'done') setStatus(status, job.message || `the tuning ${job.status}`, 'error');
  else setStatus(status, job.message || 'done');
  form.querySelector('button[type=submit]').disabled = false;
  await load();
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  setStatus(status, 'starting…');
  try {
    const { data } = await request(`${base}/tune`, { method: 'POST', json: {
      set_default: form.set_default.checked, variants: form.variants.checked, folds: Number(form.folds.value) } });
    await follow(data.status_url);
  } catch (err) {
    button.disabled = false;
    showJob(bar, null);
    setStatus(status, err.message, 'error');
  }
});

async function makeDefault(space) {
  try {
    await api(`${base}/default-space`, { method: 'PUT', json: { space } });
    setStatus(status, `${space} is the default now`);
  } catch (err) {
    setStatus(status, err.message, 'error');
  }
  await load();
}

async function removeSpace(space) {
  if (!window.confirm(`Remove the derived space ${space}? Its vectors and index are deleted; the spaces it was made from stay.`)) return;
  try {
    await api(`${base}/spaces/${encodeURIComponent(space)}`, { method: 'DELETE' });
    setStatus(status, `${space} removed`);
  } catch (err) {
    setStatus(status, err.message, 'error');
  }
  await load();
}

(async () => {
  await load();
  const t = await api(`${base}/spaces`).then((d) => d.last_tuning).catch(() => null);
  if (t && (t.status === 'queued' || t.status === 'running')) {  // a tuning started earlier: follow it
    form.querySelector('button[type=submit]').disabled = true;
    follow(`/api/jobs/${t.job_id}`);
  }
})();
