// Ingest page: upload image files or a zip, then follow the job (progress bar, rate, ETA) until
// it is done, and show the summary with every file that could not be added and why.
import { api, ApiError, enc, loginHint } from './api.js';
import { $, fmt, h, setStatus } from './ui.js';

const form = $('#ingest-form');
const errorBox = $('#ingest-error');
const jobBox = $('#ingest-job');
const bar = $('#ingest-progress');
const statusLine = $('#ingest-status');
const summary = $('#ingest-summary');
const errorsTable = $('#ingest-errors');
const POLL_MS = 700;

for (const r of form.querySelectorAll('input[name=kind]')) {
  r.addEventListener('change', () => {
    const zip = form.kind.value === 'archive';
    $('#files-field').hidden = zip;
    $('#archive-field').hidden = !zip;
  });
}

function fail(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

async function ensureCollection(name) {
  try {
    await api('/api/collections', { method: 'POST', json: { name } });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 409)) throw err; // 409: it exists already
  }
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  errorBox.hidden = true;
  let name = form.dataset.collection;
  const nameInput = $('#ingest-collection');
  if (!name) {
    name = nameInput.value.trim();
    if (!name || !nameInput.checkValidity()) {
      fail('Give a collection name: 1-100 letters, digits, “.”, “_” or “-”, starting with a letter or digit.');
      nameInput.focus();
      return;
    }
  }
  const body = new FormData();
  if (form.kind.value === 'archive') {
    const zip = $('#ingest-archive').files[0];
    if (!zip) { fail('Choose a zip archive to upload.'); return; }
    body.append('archive', zip, zip.name);
  } else {
    const files = [...$('#ingest-files').files];
    if (!files.length) { fail('Choose one or more image files to upload.'); return; }
    for (const f of files) body.append('files', f, f.name);
  }
  body.append('backbone', form.backbone.value);
  if (form.labels.checked) body.append('labels', 'folders');
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  jobBox.hidden = false;
  summary.hidden = true;
  bar.removeAttribute('value'); // indeterminate while uploading
  setStatus(statusLine, 'Uploading…');
  try {
    if (!form.dataset.collection) await ensureCollection(name);
    const job = await api(`/api/collections/${enc(name)}/ingest`, { method: 'POST', form: body });
    await follow(job.status_url || `/api/jobs/${job.job_id}`, name);
  } catch (err) {
    setStatus(statusLine, 'Upload failed.', 'error');
    bar.value = 0;
    fail(err.message + loginHint(err));
  } finally {
    button.disabled = false;
  }
});

function describe(job) {
  const parts = [`${job.processed ?? 0} of ${job.total ?? '?'} files`];
  if (job.failed) parts.push(`${job.failed} failed`);
  if (job.rate) parts.push(`${fmt(job.rate, 1)} images/s`);
  if (job.eta_seconds !== null && job.eta_seconds !== undefined && job.status === 'running') parts.push(`about ${Math.ceil(job.eta_seconds)} s left`);
  return parts.join(' · ');
}

async function follow(url, name) {
  for (;;) {
    let job;
    try {
      job = await api(url);
    } catch (err) {
      if (err.status === 0) { await sleep(POLL_MS * 3); continue; } // server briefly unreachable
      throw err;
    }
    if (job.total) {
      bar.max = job.total;
      bar.value = job.processed || 0;
    }
    jobBox.dataset.status = job.status;
    if (job.status === 'queued') setStatus(statusLine, 'Queued: waiting for a worker…');
    else if (job.status === 'running') setStatus(statusLine, `Embedding: ${describe(job)}`);
    else {
      showSummary(job, name);
      return;
    }
    await sleep(POLL_MS);
  }
}

function showSummary(job, name) {
  const ok = job.status === 'done';
  if (job.total) { bar.max = job.total; bar.value = ok ? job.total : job.processed || 0; } else { bar.max = 1; bar.value = 1; }
  setStatus(statusLine, ok ? `Done: ${describe(job)}.` : `Failed: ${job.message || job.error || 'the job stopped'}`, ok ? '' : 'error');
  $('[data-testid=summary-added]').textContent = fmt(job.added ?? 0);
  $('[data-testid=summary-skipped]').textContent = fmt(job.skipped ?? 0);
  $('[data-testid=summary-failed]').textContent = fmt(job.failed ?? 0);
  const errors = job.errors || [];
  errorsTable.hidden = errors.length === 0;
  const more = (job.errors_total || errors.length) - errors.length;
  const rows = errors.map((e) => h('tr', { 'data-testid': 'ingest-error-row' },
    h('td', { class: 'path', title: e.file }, uploadedName(e.file)), h('td', {}, e.reason)));
  if (more > 0) rows.push(h('tr', {}, h('td', { colspan: 2, class: 'muted' }, `… and ${more} more (see GET /api/jobs/${job.id})`)));
  errorsTable.querySelector('tbody').replaceChildren(...rows);
  $('#ingest-next').replaceChildren(
    h('a', { href: `/c/${enc(name)}`, class: 'button' }, 'Browse the collection'), ' ',
    h('a', { href: `/c/${enc(name)}/search` }, 'Search'), ' · ',
    h('a', { href: `/c/${enc(name)}/map` }, 'Map'));
  summary.hidden = false;
}

// Uploads are staged under <home>/uploads/<job>/; show the name as uploaded (with its folders).
function uploadedName(path) {
  const m = /[\\/]uploads[\\/]\d+[\\/](.+)$/.exec(path || '');
  return m ? m[1] : path;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
