// Export a selection (ids, or one cluster) as a file: POST .../selection, then download what comes
// back under the server's file name. exportButtons() is the row of CSV / JSON / COCO buttons the
// map, clusters, search and duplicates pages put beside a selection.
import { ApiError, collectionApi, csrfToken, loginHint } from './api.js';
import { h, setStatus } from './ui.js';

export const FORMATS = [['csv', 'CSV'], ['json', 'JSON'], ['coco', 'COCO']];

function fileName(resp, fallback) {
  const m = /filename="([^"]+)"/.exec(resp.headers.get('Content-Disposition') || '');
  return m ? m[1] : fallback;
}

// body: {image_ids}, {groups: [{group, image_ids}]} or {cluster: {backbone, k, cluster, version}}, with format. Returns the file's name.
export async function downloadExport(body) {
  const resp = await fetch(collectionApi('/selection'), {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
    body: JSON.stringify(body),
  });
  if (!resp.ok) {
    const e = ((await resp.json().catch(() => null)) || {}).error || {};
    throw new ApiError(resp.status, e.code, e.message || `${resp.status} ${resp.statusText}`, e.field);
  }
  const blob = await resp.blob();
  const name = fileName(resp, `${document.body.dataset.collection}-selection.${body.format}`);
  const a = h('a', { href: URL.createObjectURL(blob), download: name, hidden: true });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  return name;
}

// A row "Export: CSV JSON COCO"; selection() gives the body (without format) at the click, or null
// when there is nothing to export; status: where to say what happened; what: e.g. 'the results'.
export function exportButtons({ selection, status, testid = 'export', label = 'Export' }) {
  const run = async (format) => {
    const body = selection();
    if (!body) return;
    setStatus(status, 'Exporting…');
    try {
      const name = await downloadExport({ ...body, format });
      const n = body.image_ids ? body.image_ids.length : body.groups ? body.groups.length : null;
      const what = body.image_ids ? 'image' : 'group';
      setStatus(status, `Exported ${n === null ? 'the cluster' : `${n} ${what}${n === 1 ? '' : 's'}`} to ${name}.`);
    } catch (err) {
      setStatus(status, err.message + loginHint(err), 'error');
    }
  };
  return h('span', { class: 'export-row', 'data-testid': testid }, `${label}: `,
    ...FORMATS.map(([format, text]) => h('button', { type: 'button', class: 'secondary small', 'data-format': format,
      'data-testid': `${testid}-${format}`, title: format === 'coco' ? 'A COCO labels file (images, a category per label)' : null,
      onclick: () => run(format) }, text)));
}
