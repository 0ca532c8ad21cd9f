// Jobs page (/jobs) and one job's page (/jobs/<id>): every background job with its progress, rate,
// time left, files' errors and shards; cancel and retry. Polls the API while a job is queued or
// running (every ACTIVE_MS), slower when none is (IDLE_MS), and not while the tab is hidden.
import { api, ApiError } from './api.js';
import { $, h, fmt } from './ui.js';

const ACTIVE_MS = 1500;
const IDLE_MS = 10000;
const LIST_LIMIT = 100;
const enc = encodeURIComponent;
const detail = $('#job-detail');
const refreshNote = $('#jobs-refresh');
let timer = null;

const isActive = (job) => job.status === 'queued' || job.status === 'running';
const COUNTS_FILES = new Set(['ingest', 'shard']);
const COUNTS_IMAGES = new Set(['reembed', 'reembed_shard', 'features', 'features_shard']);  // passes over stored images

export function statusText(job) {
  if (job.cancelled) return 'cancelled';
  if (job.stale) return `${job.status} (no news)`;
  return job.status;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function progressText(job) {
  if (job.status === 'queued') return 'waiting for a worker';
  if (COUNTS_FILES.has(job.kind)) {
    const parts = [`${job.processed} of ${job.total} files`];
    if (job.failed) parts.push(`${job.failed} failed`);
    if (job.shards) parts.push(`shards: ${job.shards.done} of ${job.shards.total} done`);
    return parts.join(' · ');
  }
  if (COUNTS_IMAGES.has(job.kind)) {
    const parts = [`${job.processed} of ${job.total} images`];
    if (job.failed) parts.push(`${job.failed} failed`);
    if (job.shards) parts.push(`shards: ${job.shards.done} of ${job.shards.total} done`);
    return parts.join(' · ');
  }
  if (job.kind === 'index') return job.total ? `${job.total} vectors` : '';
  return job.total ? `step ${Math.min(job.processed + (isActive(job) ? 1 : 0), job.total)} of ${job.total}` : '';
}

function progressBar(job) {
  const bar = h('progress', { class: 'job-progress', max: 1, 'data-testid': 'job-row-progress',
    'aria-label': `job ${job.id} progress` });
  if (job.status === 'queued' || (!job.total && isActive(job))) bar.removeAttribute('value');
  else bar.value = job.total ? Math.min(1, job.processed / job.total) : (job.status === 'done' ? 1 : 0);
  return bar;
}

function rateText(job) {
  if (job.status !== 'running' || !job.rate || !(COUNTS_FILES.has(job.kind) || COUNTS_IMAGES.has(job.kind))) return '—';
  return `${fmt(job.rate, 1)} img/s`;
}

// Where the result is shown in the app (an analysis' page, the collection for an ingest).
function resultPage(job) {
  if (!job.collection || job.status !== 'done') return null;
  const base = `/c/${enc(job.collection)}`;
  return { ingest: base, shard: base, clusters: `${base}/clusters`, map: `${base}/map`, evaluation: `${base}/compare`,
    comparison: `${base}/compare`, duplicates: `${base}/duplicates`, tune: `${base}/spaces`, reembed: `${base}/spaces`,
    reembed_shard: `${base}/spaces`, features: base, features_shard: base }[job.kind] || null;
}

function buttons(job, after) {
  const out = [];
  if (isActive(job) && job.kind !== 'index') {
    out.push(h('button', { type: 'button', 'data-testid': 'job-cancel', 'aria-label': `Cancel job ${job.id}`,
      onclick: (e) => act(e.currentTarget, `/api/jobs/${job.id}/cancel`, after) }, 'Cancel'));
  }
  if ((job.status === 'failed' || job.status === 'interrupted') && !['shard', 'reembed_shard', 'features_shard'].includes(job.kind)) {
    if (job.retry_refused) {  // why it cannot start again, and what to do instead
      out.push(h('span', { class: 'hint retry-refused', 'data-testid': 'job-retry-refused', title: job.retry_refused },
        detail ? job.retry_refused : ['cannot be retried: ', h('a', { href: `/jobs/${job.id}` }, 'why')]));
    } else {
      out.push(h('button', { type: 'button', 'data-testid': 'job-retry', 'aria-label': `Retry job ${job.id}`,
        onclick: (e) => act(e.currentTarget, `/api/jobs/${job.id}/retry`, after) }, 'Retry'));
    }
  }
  return out;
}

async function act(button, url, after) {
  const errorLine = $('#jobs-error') || $('#job-error');
  button.disabled = true;
  errorLine.hidden = true;
  try {
    const out = await api(url, { method: 'POST' });
    await after(out);
  } catch (err) {
    errorLine.textContent = err instanceof ApiError ? err.message : String(err);
    errorLine.hidden = false;
    button.disabled = false;
  }
}

function row(job) {
  const link = h('a', { href: `/jobs/${job.id}`, 'data-testid': 'job-link' }, `#${job.id}`);
  const what = h('td', { class: 'col-what' },
    h('span', { class: 'job-title', 'data-testid': 'job-row-title' }, job.title || job.kind),
    ' ', h('span', { class: 'chip' }, job.kind),
    job.message && !isActive(job) && job.status !== 'done'
      ? h('div', { class: 'hint job-message', 'data-testid': 'job-row-message' }, job.message) : null,
    job.errors_total ? h('div', { class: 'hint' }, h('a', { href: `/jobs/${job.id}#job-errors` },
      `${job.errors_total} file${job.errors_total === 1 ? '' : 's'} could not be added`)) : null);
  const result = resultPage(job);
  return h('tr', { 'data-testid': 'job-row', 'data-id': job.id, 'data-kind': job.kind, 'data-status': statusText(job) },
    h('td', { class: 'col-id' }, link),
    what,
    h('td', { class: 'col-coll' }, job.collection ? h('a', { href: `/c/${enc(job.collection)}` }, job.collection) : '—'),
    h('td', { class: 'col-status' }, h('span', { class: `status status-${statusText(job).split(' ')[0]}`,
      'data-testid': 'job-row-status' }, statusText(job))),
    h('td', { class: 'col-progress' }, progressBar(job),
      h('div', { class: 'hint', 'data-testid': 'job-row-count' }, progressText(job))),
    h('td', { class: 'col-rate num', 'data-testid': 'job-row-rate' }, rateText(job)),
    h('td', { class: 'col-eta num', 'data-testid': 'job-row-eta' },
      job.status === 'running' && job.eta_seconds != null ? duration(job.eta_seconds) : '—'),
    h('td', { class: 'col-actions' }, ...buttons(job, () => refresh()),
      result ? h('a', { href: result, class: 'result-link' }, 'Result') : null));
}

function chosenFilter() {
  const form = $('#jobs-filter');
  return { collection: form.collection.value, show: form.show.value };
}

function shownBy(show) {
  if (show === 'active') return isActive;
  if (show === 'ended') return (j) => j.status === 'failed' || j.status === 'interrupted';
  return () => true;
}

async function loadList() {
  const { collection, show } = chosenFilter();
  const query = `limit=${LIST_LIMIT}` + (collection ? `&collection=${enc(collection)}` : '');
  const { jobs } = await api(`/api/jobs?${query}`);
  const shown = jobs.filter(shownBy(show));
  $('#jobs-rows').replaceChildren(...shown.map(row));
  $('#jobs-empty').hidden = shown.length > 0;
  return jobs.some(isActive);
}

function fact(name, value) {
  return value === null || value === undefined || value === '' ? [] : [h('dt', {}, name), h('dd', {}, value)];
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : null;
}

async function loadDetail() {
  const id = detail.dataset.jobId;
  const job = await api(`/api/jobs/${id}`);
  $('#job-title').textContent = job.title || job.kind;
  const status = $('#job-status');
  status.textContent = statusText(job);
  status.className = `status status-${statusText(job).split(' ')[0]}`;
  detail.dataset.status = statusText(job);
  $('#job-message').textContent = job.message || '';
  const bar = $('#job-progress');
  if (job.status === 'queued' || (!job.total && isActive(job))) bar.removeAttribute('value');
  else bar.value = job.total ? Math.min(1, job.processed / job.total) : (job.status === 'done' ? 1 : 0);
  const counts = [progressText(job)];
  if (job.status === 'running' && COUNTS_FILES.has(job.kind)) counts.push(rateText(job), `${duration(job.eta_seconds)} left`);
  $('#job-counts').textContent = counts.filter(Boolean).join(' · ');
  $('#job-buttons').replaceChildren(...buttons(job, (out) => {
    if (out.job_id && String(out.job_id) !== String(id)) window.location.assign(`/jobs/${out.job_id}`);
    else return refresh();
  }));
  const result = resultPage(job);
  $('#job-facts').replaceChildren(
    ...fact('Kind', job.kind),
    ...fact('Collection', job.collection ? h('a', { href: `/c/${enc(job.collection)}` }, job.collection) : null),
    ...fact('Part of', job.parent_id ? h('a', { href: `/jobs/${job.parent_id}`, 'data-testid': 'job-parent' },
      `${job.kind === 'shard' ? 'ingest' : 'job'} #${job.parent_id}`) : null),
    ...fact('Backbones', (job.backbones || []).join(', ')),
    ...fact('Source', job.source),
    ...(COUNTS_FILES.has(job.kind) ? [...fact('Added', fmt(job.added)), ...fact('Already present', fmt(job.skipped)),
      ...fact('Duplicate files', fmt(job.duplicates)), ...fact('Failed', fmt(job.failed))] : []),
    ...fact('Created', when(job.created_at)), ...fact('Started', when(job.started_at)),
    ...fact('Finished', when(job.finished_at)),
    ...fact('Result', result ? h('a', { href: result, 'data-testid': 'job-result' }, 'open') : null));
  const shards = job.children || [];
  $('#job-shards').hidden = shards.length === 0;
  $('#job-shards tbody').replaceChildren(...shards.map((s) => h('tr', { 'data-testid': 'job-shard', 'data-status': statusText(s) },
    h('td', {}, h('a', { href: `/jobs/${s.id}` }, s.title || `#${s.id}`)),
    h('td', {}, statusText(s)), h('td', {}, progressBar(s), h('div', { class: 'hint' }, progressText(s))),
    h('td', { class: 'num' }, fmt(s.failed)), h('td', { class: 'num' }, fmt(s.attempts ?? '—')),
    h('td', { class: 'job-message' }, s.message || ''))));
  const errors = job.errors || [];
  $('#job-errors').hidden = errors.length === 0;
  const rows = errors.map((e) => h('tr', { 'data-testid': 'job-error-row' }, h('td', { class: 'path' }, e.file), h('td', {}, e.reason)));
  if (job.errors_total > errors.length) {
    rows.push(h('tr', {}, h('td', { colspan: 2, class: 'muted' }, `… and ${job.errors_total - errors.length} more`)));
  }
  $('#job-errors tbody').replaceChildren(...rows);
  return isActive(job) || shards.some(isActive);
}

async function refresh() {
  clearTimeout(timer);
  let active = false;
  try {
    active = await (detail ? loadDetail() : loadList());
    refreshNote.textContent = `Updated ${new Date().toLocaleTimeString()}` + (active ? ' · refreshing while jobs run' : '');
    refreshNote.dataset.active = active ? 'true' : 'false';
  } catch (err) {
    refreshNote.textContent = `Could not refresh: ${err.message}`;
  }
  timer = setTimeout(tick, active ? ACTIVE_MS : IDLE_MS);
}

function tick() {
  if (document.hidden) { timer = setTimeout(tick, ACTIVE_MS); return; }
  refresh();
}

// "Store local features" of the chosen collection: POST .../features (202: its job joins the list)
function showFeaturesButton() {
  $('#jobs-features').hidden = !chosenFilter().collection;
}

async function storeFeatures(e) {
  const button = e.currentTarget;
  const errorLine = $('#jobs-error');
  button.disabled = true;
  errorLine.hidden = true;
  try {
    await api(`/api/collections/${enc(chosenFilter().collection)}/features`, { method: 'POST', json: {} });
    await refresh();
  } catch (err) {
    errorLine.textContent = err instanceof ApiError ? err.message : String(err);
    errorLine.hidden = false;
  } finally {
    button.disabled = false;
  }
}

if (!detail) {
  const form = $('#jobs-filter');
  showFeaturesButton();
  $('#jobs-features').addEventListener('click', storeFeatures);
  form.addEventListener('change', () => {
    showFeaturesButton();
    const { collection } = chosenFilter();
    const url = new URL(window.location.href);
    if (collection) url.searchParams.set('collection', collection); else url.searchParams.delete('collection');
    window.history.replaceState(null, '', url);
    refresh();
  });
  form.addEventListener('submit', (e) => e.preventDefault());
}
refresh();
