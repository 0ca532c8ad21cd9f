// Calls to the JSON API. Errors come back as {"error": {"code", "message", "field"?}}; they are
// thrown as ApiError so pages can show the message (and mark the field) without guessing.

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : '';
}

// The response as {status, data, headers}; errors (status >= 400, network) are thrown as ApiError.
export async function request(path, { method = 'GET', json, form, file, signal } = {}) {
  const headers = { Accept: 'application/json' };
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  } else if (file !== undefined) {  // the file itself as the body (no multipart encoding)
    headers['Content-Type'] = file.type && file.type.startsWith('image/') ? file.type : 'application/octet-stream';
    body = file;
  }
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken();
  let resp;
  try {
    resp = await fetch(path, { method, headers, body, signal, credentials: 'same-origin' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'The server could not be reached: ' + err.message);
  }
  const type = resp.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await resp.json().catch(() => null)
    : type.includes('octet-stream') && resp.ok ? await resp.arrayBuffer() : null;
  if (!resp.ok) {
    const e = (data && data.error) || {};
    if (resp.status === 401 && !e.message) e.message = 'Sign in with an API key first.';
    throw new ApiError(resp.status, e.code || 'http_' + resp.status, e.message || `${resp.status} ${resp.statusText}`, e.field);
  }
  return { status: resp.status, data, headers: resp.headers };
}

export async function api(path, options = {}) {
  return (await request(path, options)).data;
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(t); reject(new DOMException('aborted', 'AbortError')); }, { once: true });
});

// An analysis result (clusters, map, evaluation, comparison). The server answers 200 with the
// result when it is cached, or 202 with a background job ({job_id, status, status_url}); the job
// is then polled (onProgress(job) after each poll) until it is done, and the result fetched again.
// A failed job is thrown as ApiError with its message.
export async function analysisResult(path, { onProgress, signal, interval = 700 } = {}) {
  for (let attempt = 0; ; attempt++) {
    const first = await request(path, { signal });
    if (first.status !== 202) return first.data;
    const statusUrl = first.data.status_url || `/api/jobs/${first.data.job_id}`;
    let job = first.data;
    if (onProgress) onProgress(job);
    while (job.status === 'queued' || job.status === 'running') {
      await sleep(interval, signal);
      job = await api(statusUrl, { signal });
      if (onProgress) onProgress(job);
    }
    if (job.status !== 'done') {
      throw new ApiError(500, 'job_failed', job.message || `the computation ${job.status}`);
    }
    if (attempt >= 2) {  // done twice and still not cached: the data changed under it each time
      throw new ApiError(409, 'changed', 'The collection keeps changing while this is computed; try again.');
    }
  }
}

// The binary map (GET .../map.bin; layout in simsearch/web/map_binary.py) as
// {collection, backbone, method, n, k, ids, x, y, labels, clusters}: typed arrays for the
// coordinates, ids and clusters; labels as one string (or null) per point.
export function decodeMap(buffer) {
  const view = new DataView(buffer);
  const magic = new TextDecoder().decode(new Uint8Array(buffer, 0, 6));
  if (magic !== 'SSMAP1') throw new ApiError(500, 'bad_map', 'The server sent a map this page cannot read.');
  const hlen = view.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 12, hlen)));
  const n = header.n;
  let off = 12 + hlen;
  off += (8 - (off % 8)) % 8;
  const take = (Type) => { const a = new Type(buffer, off, n); off += n * Type.BYTES_PER_ELEMENT; return a; };
  const ids = header.id_type === 'uint32' ? take(Uint32Array) : take(Float64Array);
  const qx = take(Uint16Array), qy = take(Uint16Array), qlab = take(Uint16Array), clusters = take(Int16Array);
  const scale = (q, [lo, hi]) => { const out = new Float32Array(n); const k = (hi - lo) / 65535; for (let i = 0; i < n; i++) out[i] = lo + q[i] * k; return out; };
  const names = header.labels;
  const labels = new Array(n);
  for (let i = 0; i < n; i++) labels[i] = qlab[i] === 65535 ? null : names[qlab[i]];
  return { ...header, ids: Array.from(ids), x: scale(qx, header.x_range), y: scale(qy, header.y_range), labels, clusters: Array.from(clusters) };
}

// "step 2 of 3: k-means ... (12 s)" for a job being polled.
export function jobProgressText(job, what) {
  if (job.status === 'queued') return `${what}: waiting for a worker…`;
  const steps = job.total ? ` (step ${Math.min(job.processed + 1, job.total)} of ${job.total})` : '';
  const started = job.started_at ? Date.parse(job.started_at) : NaN;
  const secs = Number.isNaN(started) ? '' : `, ${Math.max(0, Math.round((Date.now() - started) / 1000))} s`;
  return `${what}${steps}: ${job.message || 'working'}…${secs}`;
}

export const enc = encodeURIComponent;

export function collectionName() {
  return document.body.dataset.collection;
}

export function collectionApi(suffix = '') {
  return `/api/collections/${enc(collectionName())}${suffix}`;
}

export function thumbUrl(id) {
  return `/api/images/${id}/thumbnail`;
}

export function loginHint(err) {
  return err instanceof ApiError && err.status === 401 && !err.message.includes('/login') ? ' (sign in at /login)' : '';
}
