// The images themselves on the map, drawn as sprites from thumbnail atlases when zoomed in.
//
// Zoomed out the map is dots (scatter.js). Once a sprite would be at least MIN_PX wide and at
// most MAX_SPRITES points are in view, each point in view is drawn as its thumbnail, framed in its
// colour (cluster or label), on a 2-D canvas above the dots. The thumbnails come in atlases, one
// JPEG a map tile (GET /api/collections/{name}/atlas/{space}/{z-x-y}?v={generation}; see
// simsearch/ops/atlas.py): a tile is a cell of a 2^z x 2^z grid over the quantised coordinates
// of the binary map, so the page knows from the payload which tiles hold which points and asks
// only for the tiles in view, at the level z where a tile is about a screen's quarter and holds
// no more points than an atlas does. Atlases are immutable per map generation, so the browser's
// HTTP cache keeps them; here the most recent MAX_ATLASES stay decoded. A point without a cell
// (an imported image has no thumbnail) stays a dot.

const MIN_PX = 16; // narrower sprites are not worth drawing: dots
const MAX_PX = 88;
const MAX_SPRITES = 1500; // more points in view: dots
const ATLAS_MAX_CELLS = 256; // as the server (simsearch/ops/atlas.py MAX_CELLS)
const MAX_LEVEL = 8;
const TILE_TARGET_PX = 384;
const MAX_ATLASES = 96;
const CONCURRENT = 4;

export class SpriteLayer {
  // data: the decoded map ({ids, qx, qy, x_range, y_range, generation}); atlasUrl(tileKey) -> URL.
  constructor(canvas, scatter, data, { atlasUrl, colourOf }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.scatter = scatter;
    this.data = data;
    this.atlasUrl = atlasUrl;
    this.colourOf = colourOf;
    this.enabled = true;
    this.atlases = new Map(); // tile key -> {state: 'loading'|'ok'|'empty'|'error', bitmap, cells: Map(id -> k), columns, cell}
    this.queue = [];
    this.inFlight = 0;
    this.requests = 0; // atlas requests made (for tests and the console)
    this.drawn = 0; // sprites in the last frame
    this.level = -1;
    this.counts = []; // per level: points per tile (lazily)
    this.selected = null; // Uint8Array by point when a selection exists
    const sx = data.x_range[1] - data.x_range[0], sy = data.y_range[1] - data.y_range[0];
    const half = Math.max(sx, sy) / 2 || 1;
    this.tileWorld = [sx / half, sy / half]; // the level-0 tile's size in scatter world units
  }

  setEnabled(on) { this.enabled = on; this.draw(); }

  setSelection(indices) {
    if (!indices.length) { this.selected = null; return; }
    this.selected = new Uint8Array(this.scatter.n);
    for (const i of indices) this.selected[i] = 1;
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(this.canvas.clientWidth * dpr);
    this.canvas.height = Math.round(this.canvas.clientHeight * dpr);
  }

  // A sprite's side: a share of the map's area per point, growing with the zoom.
  spritePx() {
    const sc = this.scatter, b = sc.bounds || [-1, 1, -1, 1];
    const area = Math.max((b[1] - b[0]) * (b[3] - b[2]), 1e-6);
    return Math.min(MAX_PX, 0.9 * sc.zoom * Math.sqrt(area / Math.max(sc.n, 1)));
  }

  tileCounts(z) {
    if (!this.counts[z]) {
      const side = 2 ** z, shift = 16 - z, counts = new Uint32Array(side * side), { qx, qy } = this.data;
      for (let i = 0; i < qx.length; i++) counts[(qy[i] >> shift) * side + (qx[i] >> shift)]++;
      this.counts[z] = counts;
    }
    return this.counts[z];
  }

  tileOf(i, z) {
    const shift = 16 - z;
    return [this.data.qx[i] >> shift, this.data.qy[i] >> shift];
  }

  // The points in view (at most MAX_SPRITES + 1: one more says "too many"), from the scatter's grid.
  visible(pad) {
    const sc = this.scatter, g = sc.grid;
    const [x0, y1] = sc.toWorld(-pad, -pad), [x1, y0] = sc.toWorld(sc.cssWidth + pad, sc.cssHeight + pad);
    const out = [];
    for (let cy = g.coord(y0); cy <= g.coord(y1); cy++) {
      for (let cx = g.coord(x0); cx <= g.coord(x1); cx++) {
        const c = cy * g.g + cx;
        for (let k = g.cellStart[c]; k < g.cellStart[c + 1]; k++) {
          const i = g.items[k], x = sc.pos[2 * i], y = sc.pos[2 * i + 1];
          if (x < x0 || x > x1 || y < y0 || y > y1) continue;
          out.push(i);
          if (out.length > MAX_SPRITES) return out;
        }
      }
    }
    return out;
  }

  // The level whose tiles are about TILE_TARGET_PX wide on screen, deeper while a tile in view
  // holds more points than an atlas has cells.
  chooseLevel(points) {
    const px = this.scatter.zoom * Math.max(this.tileWorld[0], this.tileWorld[1]);
    let z = Math.max(0, Math.min(MAX_LEVEL, Math.ceil(Math.log2(Math.max(1, px / TILE_TARGET_PX)))));
    for (; z < MAX_LEVEL; z++) {
      const counts = this.tileCounts(z), side = 2 ** z;
      let dense = false;
      for (const i of points) {
        const [tx, ty] = this.tileOf(i, z);
        if (counts[ty * side + tx] > ATLAS_MAX_CELLS) { dense = true; break; }
      }
      if (!dense) break;
    }
    return z;
  }

  request(key) {
    if (this.atlases.has(key)) {
      const a = this.atlases.get(key);
      this.atlases.delete(key); // most recently used last
      this.atlases.set(key, a);
      return a;
    }
    const entry = { state: 'loading' };
    this.atlases.set(key, entry);
    this.queue.push(key);
    this.pump();
    return entry;
  }

  pump() {
    while (this.inFlight < CONCURRENT && this.queue.length) {
      const key = this.queue.pop(); // the newest first: what is in view now
      const entry = this.atlases.get(key);
      if (!entry) continue;
      this.inFlight++;
      this.requests++;
      this.load(key, entry).finally(() => { this.inFlight--; this.pump(); this.scatter.requestDraw(); });
    }
  }

  async load(key, entry) {
    try {
      const resp = await fetch(this.atlasUrl(key), { credentials: 'same-origin' });
      if (resp.status === 204) { entry.state = 'empty'; return; }
      if (!resp.ok) { entry.state = 'error'; return; }
      const ids = (resp.headers.get('X-Atlas-Ids') || '').split(',').filter(Boolean);
      entry.cells = new Map(ids.map((id, k) => [Number(id), k]));
      entry.columns = Number(resp.headers.get('X-Atlas-Columns'));
      entry.cell = Number(resp.headers.get('X-Atlas-Cell'));
      entry.bitmap = await createImageBitmap(await resp.blob());
      entry.state = 'ok';
      this.evict();
    } catch (err) {
      entry.state = 'error';
    }
  }

  evict() {
    let loaded = 0;
    for (const a of this.atlases.values()) if (a.state === 'ok') loaded++;
    for (const [key, a] of this.atlases) {
      if (loaded <= MAX_ATLASES) break;
      if (a.state !== 'ok') continue;
      a.bitmap.close();
      this.atlases.delete(key);
      loaded--;
    }
  }

  // Called after every frame of the scatter plot.
  draw() {
    const ctx = this.ctx, sc = this.scatter, dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.drawn = 0;
    const S = this.spritePx();
    if (!this.enabled || S < MIN_PX) { this.level = -1; return; }
    const points = this.visible(S);
    if (points.length > MAX_SPRITES) { this.level = -1; return; }
    const z = this.level = this.chooseLevel(points);
    const ids = this.data.ids;
    const byTile = new Map();
    for (const i of points) {
      const [tx, ty] = this.tileOf(i, z);
      const key = `${z}-${tx}-${ty}`;
      if (!byTile.has(key)) byTile.set(key, []);
      byTile.get(key).push(i);
    }
    const hasSel = this.selected !== null;
    for (const [key, list] of byTile) {
      const a = this.request(key);
      if (a.state !== 'ok') continue;
      for (const i of list) {
        const k = a.cells.get(ids[i]);
        if (k === undefined) continue; // no thumbnail (or past the atlas's cells): a dot
        const [x, y] = sc.toScreen(i);
        const on = hasSel && this.selected[i];
        ctx.globalAlpha = hasSel && !on ? 0.3 : 1;
        ctx.drawImage(a.bitmap, (k % a.columns) * a.cell, Math.floor(k / a.columns) * a.cell, a.cell, a.cell,
          x - S / 2, y - S / 2, S, S);
        ctx.lineWidth = on ? 3 : 2;
        ctx.strokeStyle = on ? '#111' : this.colourOf(i);
        ctx.strokeRect(x - S / 2, y - S / 2, S, S);
        this.drawn++;
      }
    }
    ctx.globalAlpha = 1;
  }
}
