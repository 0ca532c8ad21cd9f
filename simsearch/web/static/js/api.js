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

export async function api(path, { method = 'GET', json, form, file, signal } = {}) {
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
  const data = type.includes('json') ? await resp.json().catch(() => null) : null;
  if (!resp.ok) {
    const e = (data && data.error) || {};
    if (resp.status === 401 && !e.message) e.message = 'Sign in with an API key first.';
    throw new ApiError(resp.status, e.code || 'http_' + resp.status, e.message || `${resp.status} ${resp.statusText}`, e.field);
  }
  return data;
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
  return err instanceof ApiError && err.status === 401 ? ' (sign in at /login)' : '';
}
