// The search page's examples: "more like these, less like those" (docs/search-examples.md).
// Holds the positive and negative examples (image ids of the collection, or files), shows them as
// chips with a remove button, and builds the request of POST .../search/examples.
import { thumbUrl } from './api.js';
import { h } from './ui.js';

export class Examples {
  // lists: {like: <ul>, unlike: <ul>}; panel: shown while there are examples; onchange(): after a removal
  constructor({ lists, panel, onchange }) {
    this.lists = lists;
    this.panel = panel;
    this.onchange = onchange;
    this.like = [];
    this.unlike = [];
  }

  get size() { return this.like.length + this.unlike.length; }

  // Whether the plain search by one image cannot answer: several examples, or a negative one.
  get several() { return this.like.length > 1 || this.unlike.length > 0; }

  has(kind, ex) { return this[kind].some((e) => same(e, ex)); }

  // Add an example ({id, name?} or {file}); an image given as the other kind moves over.
  add(kind, ex) {
    const other = kind === 'like' ? 'unlike' : 'like';
    this[other] = this[other].filter((e) => !same(e, ex));
    if (!this.has(kind, ex)) this[kind].push(ex.file ? { ...ex, url: URL.createObjectURL(ex.file) } : ex);
    this.render();
  }

  remove(kind, i) {
    const [gone] = this[kind].splice(i, 1);
    if (gone?.url) URL.revokeObjectURL(gone.url);
    this.render();
    this.onchange();
  }

  clear() {
    for (const e of [...this.like, ...this.unlike]) if (e.url) URL.revokeObjectURL(e.url);
    this.like = [];
    this.unlike = [];
    this.render();
  }

  ids(kind) { return this[kind].filter((e) => e.id !== undefined).map((e) => e.id); }

  files(kind) { return this[kind].filter((e) => e.file).map((e) => e.file); }

  // The request for api(): JSON when every example is an id, else a multipart form.
  request({ k, backbone, minPercentile }) {
    const options = { k: Number(k), ...(backbone ? { backbone } : {}), ...(minPercentile ? { min_percentile: minPercentile } : {}) };
    if (!this.files('like').length && !this.files('unlike').length) {
      return { method: 'POST', json: { like: this.ids('like'), unlike: this.ids('unlike'), ...options } };
    }
    const form = new FormData();
    for (const kind of ['like', 'unlike']) {
      if (this.ids(kind).length) form.set(kind, this.ids(kind).join(','));
      for (const f of this.files(kind)) form.append(`${kind}_image`, f, f.name);
    }
    for (const [key, value] of Object.entries(options)) form.set(key, String(value));
    return { method: 'POST', form };
  }

  // "2 examples" / "cat.5.jpg"
  describe(kind) {
    const list = this[kind];
    return list.length === 1 ? exampleName(list[0]) : `${list.length} examples`;
  }

  render() {
    this.panel.hidden = this.size === 0;
    for (const kind of ['like', 'unlike']) {
      const word = kind === 'like' ? 'more like' : 'less like';
      this.lists[kind].replaceChildren(...this[kind].map((e, i) => {
        const name = exampleName(e);
        return h('li', { class: `example-chip ${kind}`, 'data-testid': `chip-${kind}`, 'data-id': e.id ?? '', title: `${word}: ${name}` },
          h('img', { src: e.file ? e.url : thumbUrl(e.id), alt: '', width: 40, height: 40 }),
          h('span', { class: 'example-name' }, name),
          h('button', { type: 'button', class: 'example-remove', 'data-testid': `remove-${kind}`, 'aria-label': `Remove ${name} (${word})`,
            title: 'Remove this example', onclick: () => this.remove(kind, i) }, '×'));
      }));
      this.lists[kind].closest('[data-kind]').hidden = this[kind].length === 0;
    }
  }
}

// An example's file name (an image of the collection: its own, when known), else "image 12".
function exampleName(e) {
  return e.file ? e.file.name : e.name || `image ${e.id}`;
}

function same(a, b) {
  return a.id !== undefined ? a.id === b.id : a.file === b.file;
}

// The URL of a search by ids only (shareable; files cannot be put in a URL), else null.
export function examplesQuery(examples, minPercentile) {
  if (examples.files('like').length || examples.files('unlike').length) return null;
  const q = new URLSearchParams({ like: examples.ids('like').join(',') });
  if (examples.unlike.length) q.set('unlike', examples.ids('unlike').join(','));
  if (minPercentile) q.set('min_percentile', String(minPercentile));
  return q;
}

// What a result's score means, for its badge's title.
export function scoreTitle(r) {
  const parts = [`score ${r.score.toFixed(3)}: cosine similarity ${r.like.toFixed(3)} to the examples' average`];
  if (r.penalty) {
    const ex = r.unlike_example || {};
    parts.push(`minus ${r.penalty.toFixed(3)}, as it is more like ${ex.image_id !== undefined && ex.image_id !== null ? `image ${ex.image_id}` : ex.filename} (a "less like" example)`);
  }
  if (r.percentile !== null && r.percentile !== undefined) parts.push(`closer than ${r.percentile}% of this collection's typical top-10 neighbours`);
  return parts.join('; ');
}
