// Duplicates page: groups of exact, near and similar images (GET .../duplicates), one row of
// thumbnails per group with every path of each image, the tier's meaning in words. The pairs are
// computed once in the background (202 + job, polled); changing the tier, the threshold or the page
// only regroups them. Export links (CSV/JSON, every group) and "keep one of each group": a preview
// (POST .../duplicates/resolve), then the same plan applied (its digest: refused if it changed).
import { analysisResult, api, collectionApi, jobProgressText } from './api.js';
import { exportButtons } from './export.js';
import { $, h, setStatus, showJob, spaceLabel, tile } from './ui.js';

const form = $('#dups-form');
const backbone = $('#dups-backbone');
const threshold = $('#dups-threshold');
const status = $('#dups-status');
const bar = $('#dups-progress');
const list = $('#dups-groups');
const meaning = $('#dups-meaning');
const prev = $('#dups-prev');
const next = $('#dups-next');
const pageText = $('#dups-page');
const nearDefault = threshold.value;
const exportCsv = $('#dups-export-csv');
const exportJson = $('#dups-export-json');
const resolveForm = $('#dups-resolve');
const keep = $('#dups-keep');
const pattern = $('#dups-pattern');
const applyBtn = $('#dups-apply');
const planText = $('#dups-plan');
const planList = $('#dups-plan-list');
let page = 1;
let pending = null;
let plan = null;  // the last preview: {request body, digest}
let shownGroups = [];  // the groups of the page shown: "Export the groups shown" (with a COCO file)
$('#dups-export-shown').replaceChildren(exportButtons({ status: $('#dups-export-status'), testid: 'dups-export-shown',
  label: 'Export the groups shown', selection: () => {
    const groups = shownGroups.map((g) => ({ group: g.group, image_ids: g.images.map((img) => img.id) }));
    return groups.length ? { groups } : null;
  } }));

const params = new URLSearchParams(location.search);
if (params.get('backbone')) backbone.value = params.get('backbone');
if (['exact', 'near', 'similar'].includes(params.get('tier'))) form.tier.value = params.get('tier');
if (params.get('threshold')) threshold.value = params.get('threshold');
if (params.get('page')) page = Math.max(1, parseInt(params.get('page'), 10) || 1);
syncThreshold();

function syncThreshold() {
  threshold.disabled = form.tier.value === 'exact';
}

async function run() {
  if (!backbone.value) return;
  const tier = form.tier.value;
  const q = new URLSearchParams({ backbone: backbone.value, tier, page: String(page), per_page: '20' });
  if (tier !== 'exact' && threshold.value) q.set('threshold', threshold.value);
  history.replaceState(null, '', `${location.pathname}?${q}`);
  const ex = new URLSearchParams({ backbone: backbone.value, tier });
  if (q.get('threshold')) ex.set('threshold', q.get('threshold'));
  exportCsv.href = collectionApi(`/duplicates/export?${ex}&format=csv`);
  exportJson.href = collectionApi(`/duplicates/export?${ex}&format=json`);
  clearPlan();
  setStatus(status, 'Finding duplicates…');
  if (pending) pending.abort();
  const mine = pending = new AbortController();
  list.setAttribute('aria-busy', 'true');
  try {
    const data = await analysisResult(collectionApi(`/duplicates?${q}`), {
      signal: mine.signal,
      onProgress: (job) => { setStatus(status, jobProgressText(job, 'Comparing every image with its nearest')); showJob(bar, job); },
    });
    showJob(bar, null);
    draw(data);
  } catch (err) {
    if (err.name === 'AbortError') return;
    showJob(bar, null);
    setStatus(status, err.message, 'error');
  } finally {
    if (pending === mine) {
      pending = null;
      list.removeAttribute('aria-busy');
    }
  }
}

function draw(data) {
  for (const [tier, c] of Object.entries(data.tiers)) {
    const el = form.querySelector(`[data-count="${tier}"]`);
    if (el) el.textContent = `(${c.groups})`;
  }
  const at = data.threshold === null ? 'identical pixels' : `cosine ≥ ${data.threshold.toFixed(3)}`;
  meaning.textContent = `${data.tier[0].toUpperCase() + data.tier.slice(1)} (${at}), largest groups first; `
    + 'a number under a thumbnail is its strongest similarity in the group. Click one to search from it.';
  setStatus(status, [`${data.total_groups} group${data.total_groups === 1 ? '' : 's'} of ${data.grouped_images} images `
    + `among ${data.n_images} (`, spaceLabel(backbone, data.backbone), ').']);
  shownGroups = data.groups;
  list.replaceChildren(...(data.groups.length ? data.groups.map(groupRow)
    : [h('li', { class: 'notice', 'data-testid': 'dups-none' }, `No ${data.tier} groups at this threshold.`)]));
  page = data.page;
  pageText.textContent = `page ${data.page} of ${data.pages}`;
  prev.disabled = data.page <= 1;
  next.disabled = data.page >= data.pages;
}

function groupRow(g) {
  const searchBase = location.pathname.replace(/\/duplicates$/, '/search');
  const span = g.max_similarity === g.min_similarity ? g.max_similarity.toFixed(4)
    : `${g.min_similarity.toFixed(4)}–${g.max_similarity.toFixed(4)}`;
  const best = new Map();  // each image's strongest pair in the group
  for (const p of g.pairs) {
    for (const id of [p.a, p.b]) if (!best.has(id) || best.get(id) < p.similarity) best.set(id, p.similarity);
  }
  const what = g.size === 1 ? ` 1 image · ${g.files} files with identical bytes`
    : ` ${g.size} images${g.files > g.size ? ` (${g.files} files)` : ''} · similarity ${span}`
      + (g.pairs.length && g.pairs.every((p) => p.identical) ? ' · identical pixels' : '')
      + (g.identical_files ? ' · some with identical bytes' : '');
  return h('li', { class: 'cluster-row', 'data-testid': 'dup-group', 'data-size': g.size, 'data-files': g.files },
    h('div', { class: 'cluster-head' },
      h('strong', {}, `Group ${g.group}`),
      h('span', { class: 'muted' }, what)),
    h('div', { class: 'rep-strip', 'data-testid': 'dup-images' },
      g.images.map((img) => tile({ id: img.id, label: img.label, path: img.path, score: best.get(img.id), testid: 'dup-image',
        onpick: (id) => { location.href = `${searchBase}?image_id=${id}`; } }))),
    h('details', { class: 'paths', 'data-testid': 'dup-paths' },
      h('summary', {}, `Paths (${g.files})`),
      h('ul', {}, g.images.flatMap((img) => img.files.map((f, k) => h('li', { class: 'path' },
        `#${img.id} `, f.path, k === 0 && img.file_count > 1 ? ` (first of ${img.file_count} identical files)` : ''))))));
}

function resolveBody(apply) {
  const body = { backbone: backbone.value, tier: form.tier.value, keep: keep.value };
  if (body.tier !== 'exact' && threshold.value) body.threshold = Number(threshold.value);
  if (pattern.value) body.pattern = pattern.value;
  if (apply) body.digest = plan.digest;  // carry out the previewed plan (409 if it changed since)
  return body;
}

function clearPlan() {
  plan = null;
  applyBtn.disabled = true;
  planText.textContent = '';
  planList.replaceChildren();
}

function drawPlan(p) {
  const s = p.summary;
  const done = p.applied ? 'Done: ' : 'Preview (nothing changed yet): ';
  planText.textContent = `${done}${s.groups_acted} group${s.groups_acted === 1 ? '' : 's'} acted on, `
    + `${s.groups_skipped} left alone; ${s.files_dropped} file record${s.files_dropped === 1 ? '' : 's'} dropped, `
    + `${s.images_deleted} image${s.images_deleted === 1 ? '' : 's'} deleted.`;
  planList.replaceChildren(...p.groups.slice(0, 200).map((g) => h('li', { 'data-testid': 'dup-plan-group' },
    g.skipped ? `Group ${g.group}: left alone (${g.skipped})`
      : [`Group ${g.group}: keep ${g.keep.path}`,
        ...g.drop_files.map((f) => h('div', { class: 'muted' }, `drop record: ${f.path}`)),
        ...g.delete_images.map((d) => h('div', { class: 'muted' }, `delete image #${d.image_id}: ${d.paths.join(', ')}`))])));
}

async function resolve(apply) {
  if (apply && !plan) return;
  setStatus(planText, apply ? 'Removing…' : 'Planning…');
  applyBtn.disabled = true;
  try {
    const p = await api(collectionApi('/duplicates/resolve'), { method: 'POST', json: resolveBody(apply) });
    drawPlan(p);
    if (p.applied) {
      plan = null;
      page = 1;
      await run();
      drawPlan(p);
    } else {
      plan = { digest: p.digest };
      applyBtn.disabled = p.summary.groups_acted === 0;
    }
  } catch (err) {
    setStatus(planText, err.message, 'error');
    plan = null;
  }
}

keep.addEventListener('change', clearPlan);
pattern.addEventListener('input', clearPlan);
resolveForm.addEventListener('submit', (ev) => { ev.preventDefault(); resolve(false); });
applyBtn.addEventListener('click', () => resolve(true));

form.addEventListener('submit', (ev) => { ev.preventDefault(); page = 1; run(); });
for (const r of form.querySelectorAll('input[name=tier]')) {
  r.addEventListener('change', () => {
    const was = r.value;
    if (was === 'near') threshold.value = nearDefault;
    if (was === 'similar') threshold.value = threshold.dataset.similar;
    syncThreshold();
    page = 1;
    run();
  });
}
backbone.addEventListener('change', () => { page = 1; run(); });
prev.addEventListener('click', () => { page = Math.max(1, page - 1); run(); });
next.addEventListener('click', () => { page += 1; run(); });
run();
