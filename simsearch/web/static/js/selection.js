// Several images selected in the browse grid (kept across pages and filters until cleared), and
// what can be done to them at once: set or remove a label, export them (CSV or JSON, every path
// of each image), remove them from the collection (after a confirmation; files stay on disk).
import { ApiError, api, collectionApi, csrfToken, loginHint } from './api.js';
import { $, h } from './ui.js';

const plural = (n, one = 'image') => `${n} ${one}${n === 1 ? '' : 's'}`;

export class Selection {
  // order(): the ids shown, in order (for shift-click ranges); redraw(): show the selection;
  // reload(): fetch the page again (after a change to the images); labelled(label): a label was set.
  constructor({ order, redraw, reload, labelled = () => {} }) {
    Object.assign(this, { order, redraw, reload, labelled });
    this.ids = new Set();
    this.last = null;  // the last box clicked (a shift-click selects from it)
    this.count = $('#selected-count');
    this.actions = $('#bulk-actions');
    this.result = $('#bulk-result');
    this.labelInput = $('#bulk-label');
    this.dialog = $('#remove-dialog');
    $('#select-page').addEventListener('click', () => { for (const id of this.order()) this.ids.add(id); this.changed(); });
    $('#clear-selection').addEventListener('click', () => { this.ids.clear(); this.last = null; this.changed(); });
    $('#bulk-set-label').addEventListener('click', () => this.label(this.labelInput.value.trim()));
    this.labelInput.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') { ev.preventDefault(); this.label(this.labelInput.value.trim()); }
    });
    $('#bulk-unlabel').addEventListener('click', () => this.label(null));
    $('#bulk-export-csv').addEventListener('click', () => this.exportAs('csv'));
    $('#bulk-export-json').addEventListener('click', () => this.exportAs('json'));
    $('#bulk-remove').addEventListener('click', () => this.confirmRemove());
    this.dialog.addEventListener('close', () => { if (this.dialog.returnValue === 'remove') this.remove(); });
    this.changed();
  }

  has(id) {
    return this.ids.has(id);
  }

  // A box clicked: with shift, every image between the last box clicked and this one takes its state.
  clicked(id, on, shift) {
    const order = this.order();
    const [a, b] = [order.indexOf(this.last), order.indexOf(id)];
    const range = shift && a >= 0 && b >= 0 ? order.slice(Math.min(a, b), Math.max(a, b) + 1) : [id];
    for (const x of range) { if (on) this.ids.add(x); else this.ids.delete(x); }
    this.last = id;
    this.changed();
  }

  changed() {
    const n = this.ids.size;
    this.count.textContent = n ? `${plural(n)} selected` : 'None selected';
    this.actions.hidden = !n;
    this.redraw();
  }

  say(text, error = false) {
    this.result.textContent = text;
    this.result.classList.toggle('error', error);
  }

  async label(label) {
    if (label === '') { this.say('Type a label first.', true); this.labelInput.focus(); return; }
    const ids = [...this.ids];
    try {
      const res = await api(collectionApi('/labels'), { method: 'POST', json: { image_ids: ids, label } });
      this.say(label === null ? `Label removed from ${plural(res.updated)}.` : `${plural(res.updated)} labelled “${res.label}”.`);
      const list = $('#known-labels');
      if (label && ![...list.options].some((o) => o.value === res.label)) list.append(h('option', { value: res.label }));
      if (label) this.labelled(res.label);
      this.reload();
    } catch (err) {
      this.say(err.message + loginHint(err), true);
    }
  }

  confirmRemove() {
    $('#remove-count').textContent = plural(this.ids.size);
    this.dialog.returnValue = '';
    this.dialog.showModal();
  }

  async remove() {
    const ids = [...this.ids];
    try {
      const res = await api(collectionApi('/images/remove'), { method: 'POST', json: { image_ids: ids } });
      this.ids.clear();
      this.last = null;
      this.changed();
      this.say(`${plural(res.removed)} removed from the collection (the files are still on disk).`);
      this.reload();
    } catch (err) {
      this.say(err.message + loginHint(err), true);
    }
  }

  // The server writes the file (paths shown as the API shows them); the page saves it.
  async exportAs(format) {
    const ids = [...this.ids];
    this.say('Exporting…');
    try {
      const resp = await fetch(collectionApi('/selection'), {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
        body: JSON.stringify({ image_ids: ids, format }),
      });
      if (!resp.ok) {
        const e = ((await resp.json().catch(() => null)) || {}).error || {};
        throw new ApiError(resp.status, e.code, e.message || `${resp.status} ${resp.statusText}`, e.field);
      }
      const blob = await resp.blob();
      const name = `${document.body.dataset.collection}-selection.${format}`;
      const a = h('a', { href: URL.createObjectURL(blob), download: name, hidden: true, 'data-testid': 'export-link' });
      document.body.append(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
      this.say(`Exported ${plural(ids.length)} to ${name}.`);
    } catch (err) {
      this.say(err.message + loginHint(err), true);
    }
  }
}
