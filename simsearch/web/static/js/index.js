// Collections page: create a collection, then go and add images to it.
import { api, enc, loginHint } from './api.js';
import { $ } from './ui.js';

const form = $('#create-collection');
const input = $('#new-name');
const error = $('#new-name-error');

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  error.hidden = true;
  input.removeAttribute('aria-invalid');
  const name = input.value.trim();
  if (!input.checkValidity() || !name) {
    showError('Use 1-100 letters, digits, “.”, “_” or “-”, starting with a letter or digit.');
    return;
  }
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    await api('/api/collections', { method: 'POST', json: { name } });
    location.href = `/c/${enc(name)}/ingest`;
  } catch (err) {
    showError(err.message + loginHint(err));
  } finally {
    button.disabled = false;
  }
});

function showError(text) {
  error.textContent = text;
  error.hidden = false;
  input.setAttribute('aria-invalid', 'true');
  input.focus();
}
