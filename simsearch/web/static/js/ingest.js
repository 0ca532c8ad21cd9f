// Ingest page: upload a folder (picked or dropped), image files or a zip, then follow the job
// (progress bar, rate, ETA) until it is done, and show the summary with every file that could not
// be added and why.
//
// A folder's files are sent with their path inside it as the multipart file name
// (`flowers/daisy/1.jpg`: the browser's webkitRelativePath, or the dropped entry's path), which is
// what "Label images by their folder" reads on the server. Files picked loose carry no folder, so
// for them that option is switched off, saying why.
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

const folderInput = $('#ingest-folder');
const filesInput = $('#ingest-files');
const dropZone = $('#ingest-drop');
const selectionLine = $('#ingest-selection');
const labelsBox = $('#ingest-labels');
const labelsHint = $('#labels-hint');
const LABELS_HINT = labelsHint.textContent;
const IMAGE_NAME = /\.(jpe?g|png|gif|bmp|tiff?|webp)$/i;
let picked = [];  // [{file, path}]: what the next upload sends (folder or files); path as sent
let skipped = 0;  // files left out of `picked` (not images, hidden)
let wantLabels = true;  // the checkbox as the user last set it, while it is enabled

for (const r of form.querySelectorAll('input[name=kind]')) {
  r.addEventListener('change', () => {
    const zip = form.kind.value === 'archive';
    $('#files-field').hidden = zip;
    $('#archive-field').hidden = !zip;
    updateLabelOption();
  });
}

function choose(entries) {
  const hidden = (path) => path.split('/').some((part) => part.startsWith('.'));
  picked = entries.filter((e) => IMAGE_NAME.test(e.path) && !hidden(e.path));
  skipped = entries.length - picked.length;
  describeSelection();
  updateLabelOption();
}

function folderCounts() {
  const counts = new Map();
  for (const { path } of picked) {
    const parts = path.split('/');
    if (parts.length > 1) counts.set(parts[parts.length - 2], (counts.get(parts[parts.length - 2]) || 0) + 1);
  }
  return counts;
}

function describeSelection() {
  if (!picked.length && !skipped) { selectionLine.textContent = ''; return; }
  const folders = folderCounts();
  const n = picked.length;
  let text = `${n} image${n === 1 ? '' : 's'}`;
  if (folders.size) {
    const shown = [...folders].sort((a, b) => a[0].localeCompare(b[0])).slice(0, 8).map(([f, c]) => `${f} (${c})`).join(', ');
    text += ` in ${folders.size} folder${folders.size === 1 ? '' : 's'}: ${shown}${folders.size > 8 ? ', …' : ''}`;
  } else if (n) {
    text += ', picked loose (no folders)';
  }
  if (skipped) text += `; ${skipped} other file${skipped === 1 ? '' : 's'} left out (not images, or hidden)`;
  selectionLine.textContent = text + '.';
}

// "Label images by their folder" needs folders: off (and explained) for files picked loose.
function updateLabelOption() {
  const loose = form.kind.value !== 'archive' && picked.length > 0 && folderCounts().size === 0;
  labelsBox.disabled = loose;
  labelsBox.checked = loose ? false : wantLabels;
  labelsBox.closest('label').classList.toggle('disabled', loose);
  labelsHint.textContent = loose
    ? 'Files picked one by one carry no folder, so there is no folder name to label them by. '
      + 'To label by folder, choose or drop a folder (or a zip with folders) instead.'
    : LABELS_HINT;
}
labelsBox.addEventListener('change', () => { if (!labelsBox.disabled) wantLabels = labelsBox.checked; });

folderInput.addEventListener('change', () => {
  filesInput.value = '';
  choose([...folderInput.files].map((f) => ({ file: f, path: f.webkitRelativePath || f.name })));
});
filesInput.addEventListener('change', () => {
  folderInput.value = '';
  choose([...filesInput.files].map((f) => ({ file: f, path: f.name })));
});

// A dropped folder is walked through its entries (FileSystemDirectoryEntry); browsers without
// entries give the files with their webkitRelativePath, if any.
async function walk(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\/+/, '') || file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {  // readEntries gives at most 100 entries a call
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const e of batch) await walk(e, out);
    }
  }
}

['dragenter', 'dragover'].forEach((t) => dropZone.addEventListener(t, (ev) => { ev.preventDefault(); dropZone.classList.add('over'); }));
['dragleave', 'drop'].forEach((t) => dropZone.addEventListener(t, () => dropZone.classList.remove('over')));
dropZone.addEventListener('drop', async (ev) => {
  ev.preventDefault();
  const dt = ev.dataTransfer;
  if (!dt) return;
  // both read now: the DataTransfer is emptied once the event returns
  const entries = [...(dt.items || [])].filter((it) => it.kind === 'file').map((it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null));
  const files = [...(dt.files || [])].map((f) => ({ file: f, path: f.webkitRelativePath || f.name }));
  let got = files;
  if (entries.length && entries.every(Boolean)) {
    got = [];
    try {
      for (const e of entries) await walk(e, got);
    } catch (err) {
      fail(`The dropped folder could not be read: ${err.message || err}`);
      return;
    }
  }
  folderInput.value = '';
  filesInput.value = '';
  if (form.kind.value === 'archive') { form.kind.value = 'files'; form.kind[0].dispatchEvent(new Event('change')); }
  choose(got);
});

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
    if (!picked.length) {
      fail(skipped ? 'None of the chosen files is an image (.jpg, .png, .gif, .bmp, .tif, .webp).'
        : 'Choose a folder or image files to upload (or drop them here).');
      return;
    }
    for (const { file, path } of picked) body.append('files', file, path);
  }
  body.append('backbone', form.backbone.value);
  if (labelsBox.checked && !labelsBox.disabled) body.append('labels', 'folders');
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
  if (job.duplicates) parts.push(`${job.duplicates} duplicate file${job.duplicates === 1 ? '' : 's'}`);
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
  $('[data-testid=summary-duplicates]').textContent = fmt(job.duplicates ?? 0);
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
