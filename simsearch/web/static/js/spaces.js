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

function pm(mean, std) {
  return mean === null || mean === undefined ? '—' : `${fmt(mean)} ± ${fmt(std)}`;
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
  const have = new Map(data.spaces.map((s) => [s.name, s]));
  const report = data.last_tuning && data.last_tuning.report;
  const rows = [];
  const seen = new Set();
  if (report && report.mode === 'labelled') {
    for (const c of report.candidates) {
      rows.push({ space: c.space, p: pm(c.p_at_10_mean, c.p_at_10_std), ari: fmt(c.ari_mean), kept: fmt(c.kept_mean),
        time: fmt((c.seconds || 0) + (c.embed_seconds || 0), 1), chosen: c.space === report.chosen });
      seen.add(c.space);
    }
  }
  for (const s of data.spaces) {
    if (seen.has(s.name)) continue;
    rows.push({ space: s.name, p: s.cv ? pm(s.cv.p_at_10_mean, s.cv.p_at_10_std) : '—', ari: s.cv ? fmt(s.cv.ari_mean) : '—',
      kept: s.cv && s.cv.kept_mean != null ? fmt(s.cv.kept_mean) : '—',
      time: '—', chosen: report && report.chosen === s.name });
  }
  const tbody = $('#spaces-table tbody');
  tbody.replaceChildren(...rows.map((row) => {
    const info = have.get(row.space);
    return h('tr', { 'data-testid': 'space-row', 'data-space': row.space, 'data-default': info && info.default ? 'true' : 'false',
      class: info ? '' : 'muted' },
      h('th', { scope: 'row' }, row.chosen ? '★ ' : '', h('code', {}, row.space)),
      h('td', {}, info ? (info.internal ? 'variant (a base; not in the pickers)' : info.kind) : 'candidate (not kept)'),
      h('td', { 'data-testid': 'p-at-10' }, row.p), h('td', {}, row.ari), h('td', {}, row.kept ?? '—'), h('td', {}, row.time),
      h('td', { 'data-testid': 'default-marker' }, info && info.default ? 'default' : ''),
      h('td', {}, ...actions(row, info)));
  }));
  $('#spaces-summary').textContent = data.default_space
    ? `Default space: ${data.default_space}${data.default_chosen ? ' (chosen for this collection)' : ' (the settings\u2019 default)'}`
    : 'No default space: searches must name one.';
  const notes = [];
  const t = data.last_tuning;
  if (t && t.status !== 'done') notes.push(`Last tuning: ${t.status}${t.message ? ' — ' + t.message : ''}`);
  if (report) {
    notes.push(`Last tuning (${report.mode}, ${report.n_labelled} labelled images, ${report.n_labels} labels) took ${fmt(report.seconds, 1)} s; chosen: ${report.chosen}.`);
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
