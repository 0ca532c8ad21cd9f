// Drag a box on an image: the search page's query image and the image viewer use it to search by
// a region (the API's `box` parameter: x0,y0,x1,y1 as fractions of the image's width and height).
//
//   const drag = attachBoxDrag(img, { onBox: (box) => ..., testid: 'query-box' });
//   drag.clear();  drag.box  // the current box, or null
//
// The box is drawn over the image's pixels, wherever `object-fit: contain` puts them inside the
// element; a press without a drag stays a click (the image's own click handler runs).

const MIN_PX = 8;  // a smaller drag is a click

export function formatBox(box) {
  return box.map((v) => Math.min(1, Math.max(0, v)).toFixed(4)).join(',');
}

export function parseBox(text) {
  const v = String(text || '').split(',').map(Number);
  return v.length === 4 && v.every((x) => Number.isFinite(x) && x >= 0 && x <= 1) && v[2] > v[0] && v[3] > v[1] ? v : null;
}

// The rectangle of the image's pixels inside the element (client coordinates).
function contentRect(img) {
  const r = img.getBoundingClientRect();
  const nw = img.naturalWidth || r.width;
  const nh = img.naturalHeight || r.height;
  const fit = getComputedStyle(img).objectFit;
  if (fit !== 'contain' || !nw || !nh) return { left: r.left, top: r.top, width: r.width, height: r.height };
  const s = Math.min(r.width / nw, r.height / nh);
  const w = nw * s;
  const h = nh * s;
  return { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, width: w, height: h };
}

export function attachBoxDrag(img, { onBox, testid = 'region-box' } = {}) {
  const parent = img.parentElement;
  // the box is placed relative to the parent (a detached parent has no computed position yet)
  if (!['relative', 'absolute', 'fixed', 'sticky'].includes(getComputedStyle(parent).position)) parent.style.position = 'relative';
  const overlay = document.createElement('div');
  overlay.dataset.testid = testid;
  overlay.hidden = true;
  Object.assign(overlay.style, {
    position: 'absolute', border: '2px solid #ffcc00', outline: '1px solid rgba(0,0,0,0.6)',
    background: 'rgba(255, 204, 0, 0.12)', pointerEvents: 'none', boxSizing: 'border-box', zIndex: 2,
  });
  parent.append(overlay);
  img.draggable = false;
  img.style.cursor = 'crosshair';
  img.title = img.title || 'Drag a box to search by a part of the image';
  const state = { box: null, start: null, dragged: false };

  function place(box) {
    if (!box) { overlay.hidden = true; return; }
    const c = contentRect(img);
    const p = parent.getBoundingClientRect();
    overlay.hidden = false;
    overlay.style.left = `${c.left - p.left + parent.scrollLeft + box[0] * c.width}px`;
    overlay.style.top = `${c.top - p.top + parent.scrollTop + box[1] * c.height}px`;
    overlay.style.width = `${(box[2] - box[0]) * c.width}px`;
    overlay.style.height = `${(box[3] - box[1]) * c.height}px`;
  }

  function at(ev) {
    const c = contentRect(img);
    return [Math.min(1, Math.max(0, (ev.clientX - c.left) / c.width)), Math.min(1, Math.max(0, (ev.clientY - c.top) / c.height)),
      ev.clientX, ev.clientY];
  }

  function current(ev) {
    const [x, y] = at(ev);
    const [sx, sy] = state.start;
    return [Math.min(sx, x), Math.min(sy, y), Math.max(sx, x), Math.max(sy, y)];
  }

  img.addEventListener('pointerdown', (ev) => {
    if (ev.button !== 0) return;
    ev.preventDefault();
    state.start = at(ev);
    state.dragged = false;
    img.setPointerCapture?.(ev.pointerId);
  });
  img.addEventListener('pointermove', (ev) => {
    if (!state.start) return;
    if (!state.dragged && Math.hypot(ev.clientX - state.start[2], ev.clientY - state.start[3]) < MIN_PX) return;
    state.dragged = true;
    place(current(ev));
  });
  img.addEventListener('pointerup', (ev) => {
    if (!state.start) return;
    const box = state.dragged ? current(ev) : null;
    state.start = null;
    if (!box) return;
    const c = contentRect(img);
    if ((box[2] - box[0]) * c.width < MIN_PX || (box[3] - box[1]) * c.height < MIN_PX) { place(state.box); return; }
    state.box = box;
    place(box);
    if (onBox) onBox(box);
  });
  img.addEventListener('pointercancel', () => { state.start = null; place(state.box); });
  // the click that ends a drag is no click on the image
  img.addEventListener('click', (ev) => {
    if (state.dragged) { ev.stopImmediatePropagation(); ev.preventDefault(); state.dragged = false; }
  }, true);
  // the image moves when the page around it changes (a viewer's side panel filling in, a new image)
  img.addEventListener('load', () => place(state.box));
  if (window.ResizeObserver) {
    const watch = new ResizeObserver(() => place(state.box));
    watch.observe(img);
    watch.observe(parent);
  } else {
    window.addEventListener('resize', () => place(state.box));
  }

  return {
    get box() { return state.box; },
    set(box) { state.box = box; place(box); },
    clear() { state.box = null; place(null); },
  };
}
