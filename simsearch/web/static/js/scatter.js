// A WebGL scatter plot for up to a few hundred thousand points.
//
// Every attribute buffer is uploaded once; panning and zooming only change two uniforms, and each
// frame is a single gl.drawArrays(gl.POINTS) call. Colour comes from a per-point category
// (cluster or label): two colour buffers, switched by a uniform. Hover picking uses a
// CPU-side uniform grid over the points; lasso selection is point-in-polygon over all points.
//
// The GPU buffers hold the points in a shuffled order, so the first m of them are a uniform sample.
// A renderer too slow to draw every point within a frame (software WebGL, e.g. SwiftShader without
// a GPU) draws only such a sample while the view is moving and every point once it stops; on a GPU
// every frame draws every point.

const FRAME_BUDGET_MS = 12; // for drawing points while panning or zooming
const SETTLE_MS = 160; // a full frame follows this long after the last pan or zoom
const MIN_SAMPLE = 20000;

const VERT = `
precision mediump float;
attribute vec2 a_pos;
attribute vec4 a_ccol;
attribute vec4 a_lcol;
attribute float a_sel;
uniform vec2 u_center;
uniform vec2 u_scale;
uniform float u_mode;
uniform float u_size;
uniform float u_hasSel;
varying vec4 v_color;
void main() {
  gl_Position = vec4((a_pos - u_center) * u_scale, 0.0, 1.0);
  vec3 col = mix(a_ccol.rgb, a_lcol.rgb, u_mode);
  float on = step(0.5, a_sel);
  float a = mix(0.85, mix(0.18, 1.0, on), u_hasSel);
  gl_PointSize = u_size * mix(1.0, mix(1.0, 1.35, on), u_hasSel);
  v_color = vec4(col, a);
}`;

const FRAG = `
precision mediump float;
varying vec4 v_color;
void main() {
  vec2 d = gl_PointCoord - vec2(0.5);
  float r = dot(d, d);
  if (r > 0.25) discard;
  float edge = smoothstep(0.16, 0.25, r);
  gl_FragColor = vec4(v_color.rgb * (1.0 - 0.35 * edge), v_color.a);
}`;

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) / 255, ((n >> 8) & 255) / 255, (n & 255) / 255];
}

function compile(gl, type, src) {
  const sh = gl.createShader(type);
  gl.shaderSource(sh, src);
  gl.compileShader(sh);
  if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) throw new Error('shader: ' + gl.getShaderInfoLog(sh));
  return sh;
}

// Categorical codes of a list of values: null/undefined -> -1, others by sorted distinct value.
export function categories(values) {
  const names = [...new Set(values.filter((v) => v !== null && v !== undefined && v !== ''))].sort((a, b) =>
    typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b)));
  const index = new Map(names.map((n, i) => [n, i]));
  const codes = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    codes[i] = v === null || v === undefined || v === '' ? -1 : index.get(v);
  }
  return { names, codes };
}

// Ray-casting point-in-polygon; poly is a flat [x0, y0, x1, y1, ...] array.
export function pointInPolygon(px, py, poly) {
  let inside = false;
  const n = poly.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = poly[2 * i], yi = poly[2 * i + 1], xj = poly[2 * j], yj = poly[2 * j + 1];
    if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// A uniform grid over points in [-1, 1]^2: cellStart[c]..cellStart[c+1] index into items.
export class GridIndex {
  constructor(pos, n) {
    this.pos = pos;
    this.n = n;
    const g = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(n / 2))));
    this.g = g;
    const cellOf = new Int32Array(n);
    const counts = new Int32Array(g * g + 1);
    for (let i = 0; i < n; i++) {
      const c = this.cell(pos[2 * i], pos[2 * i + 1]);
      cellOf[i] = c;
      counts[c + 1]++;
    }
    for (let c = 0; c < g * g; c++) counts[c + 1] += counts[c];
    this.cellStart = counts;
    const fill = counts.slice(0, g * g);
    this.items = new Int32Array(n);
    for (let i = 0; i < n; i++) this.items[fill[cellOf[i]]++] = i;
  }

  coord(v) {
    return Math.min(this.g - 1, Math.max(0, Math.floor(((v + 1) / 2) * this.g)));
  }

  cell(x, y) {
    return this.coord(y) * this.g + this.coord(x);
  }

  // The nearest point to (x, y) within radius r (world units), or -1.
  nearest(x, y, r) {
    const { g, pos, items, cellStart } = this;
    const x0 = this.coord(x - r), x1 = this.coord(x + r), y0 = this.coord(y - r), y1 = this.coord(y + r);
    let best = -1, bestD = r * r;
    for (let cy = y0; cy <= y1; cy++) {
      for (let cx = x0; cx <= x1; cx++) {
        const c = cy * g + cx;
        for (let k = cellStart[c]; k < cellStart[c + 1]; k++) {
          const i = items[k];
          const dx = pos[2 * i] - x, dy = pos[2 * i + 1] - y;
          const d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }
}

export class Scatter {
  // xs, ys: numbers in any range (normalised here to [-1, 1] keeping the aspect ratio).
  constructor(canvas, { xs, ys, clusters, labels, palette, none = '#9a9a9a' }) {
    this.canvas = canvas;
    const gl = canvas.getContext('webgl', { antialias: false, alpha: false, preserveDrawingBuffer: false })
      || canvas.getContext('experimental-webgl');
    if (!gl) throw new Error('WebGL is not available in this browser');
    this.gl = gl;
    const n = xs.length;
    this.n = n;
    this.pos = normalise(xs, ys);
    this.grid = new GridIndex(this.pos, n);
    this.perm = shuffled(n); // GPU slot -> point
    this.slot = new Int32Array(n); // point -> GPU slot
    for (let k = 0; k < n; k++) this.slot[this.perm[k]] = k;
    this.sel = new Float32Array(n); // by GPU slot
    this.selCount = 0;
    this.mode = 0;
    this.frames = 0;
    this.drawCalls = 0;
    this.center = [0, 0];
    this.zoom = 1; // CSS pixels per world unit; set by fit()
    this.dpr = window.devicePixelRatio || 1;

    const prog = gl.createProgram();
    gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, VERT));
    gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, FRAG));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error('program: ' + gl.getProgramInfoLog(prog));
    gl.useProgram(prog);
    this.prog = prog;
    this.u = {};
    for (const name of ['u_center', 'u_scale', 'u_mode', 'u_size', 'u_hasSel']) {
      this.u[name] = gl.getUniformLocation(prog, name);
    }
    this.palette = palette.map(hexToRgb);
    this.none = hexToRgb(none);
    this.buffers = {};
    const gpuPos = new Float32Array(2 * n);
    for (let k = 0; k < n; k++) { gpuPos[2 * k] = this.pos[2 * this.perm[k]]; gpuPos[2 * k + 1] = this.pos[2 * this.perm[k] + 1]; }
    this.attribute('a_pos', gpuPos, 2, gl.FLOAT, gl.STATIC_DRAW);
    this.attribute('a_ccol', this.colours(clusters.map((c) => (c === null || c < 0 ? null : c))), 4, gl.UNSIGNED_BYTE, gl.STATIC_DRAW);
    this.attribute('a_lcol', this.colours(labels), 4, gl.UNSIGNED_BYTE, gl.STATIC_DRAW);
    this.attribute('a_sel', this.sel, 1, gl.FLOAT, gl.DYNAMIC_DRAW);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.clearColor(1, 1, 1, 1);
    this.baseSize = Math.max(2, Math.min(9, 9 * Math.sqrt(400 / Math.max(n, 1))));
    this.pending = false;
    this.budget = n; // points drawn per frame while moving (set by calibrate())
    this.movingUntil = 0;
    this.settleTimer = null;
    this.lastCount = 0;
  }

  // Times one full synchronous frame and sets how many points to draw while the view moves.
  calibrate() {
    const gl = this.gl, px = new Uint8Array(4);
    this.draw(this.n);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px); // waits for the frame
    const t0 = performance.now();
    this.draw(this.n);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    this.fullFrameMs = performance.now() - t0;
    this.budget = this.fullFrameMs <= FRAME_BUDGET_MS ? this.n
      : Math.min(this.n, Math.max(MIN_SAMPLE, Math.floor((this.n * FRAME_BUDGET_MS) / this.fullFrameMs)));
    return this.fullFrameMs;
  }

  moved() {
    if (this.budget >= this.n) return;
    this.movingUntil = performance.now() + SETTLE_MS;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.requestDraw(), SETTLE_MS + 5);
  }

  attribute(name, data, size, type, usage) {
    const gl = this.gl;
    const loc = gl.getAttribLocation(this.prog, name);
    const buf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, data, usage);
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, size, type, type === gl.UNSIGNED_BYTE, 0, 0);
    this.buffers[name] = buf;
  }

  // RGBA bytes per point: the palette colour of its category (grey when it has none).
  colours(values) {
    const { codes } = categories(values);
    const out = new Uint8Array(codes.length * 4);
    const P = this.palette.length;
    for (let k = 0; k < codes.length; k++) {
      const code = codes[this.perm[k]];
      const c = code < 0 ? this.none : this.palette[code % P];
      out[4 * k] = c[0] * 255; out[4 * k + 1] = c[1] * 255; out[4 * k + 2] = c[2] * 255; out[4 * k + 3] = 255;
    }
    return out;
  }

  // Replace the label colours (after labels change); a one-off upload, not per frame.
  setLabels(labels) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_lcol);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, this.colours(labels));
    this.requestDraw();
  }

  setMode(mode) {
    this.mode = mode === 'label' ? 1 : 0;
    this.requestDraw();
  }

  setSelection(indices) {
    this.sel.fill(0);
    for (const i of indices) this.sel[this.slot[i]] = 1;
    this.selCount = indices.length;
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_sel);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, this.sel);
    this.requestDraw();
  }

  get cssWidth() { return this.canvas.clientWidth || 1; }
  get cssHeight() { return this.canvas.clientHeight || 1; }

  resize() {
    this.dpr = window.devicePixelRatio || 1;
    const w = Math.round(this.cssWidth * this.dpr), h = Math.round(this.cssHeight * this.dpr);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.requestDraw();
  }

  // The whole map in view, as large as the canvas allows on both axes (no empty bands).
  fit() {
    if (!this.bounds) {
      let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      for (let i = 0; i < this.n; i++) {
        const x = this.pos[2 * i], y = this.pos[2 * i + 1];
        if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
      this.bounds = this.n ? [x0, x1, y0, y1] : [-1, 1, -1, 1];
    }
    const [x0, x1, y0, y1] = this.bounds;
    this.center = [(x0 + x1) / 2, (y0 + y1) / 2];
    const pad = Math.min(48, this.cssWidth / 8, this.cssHeight / 8); // room for the thumbnails of the outermost points
    const fitX = (this.cssWidth - 2 * pad) / Math.max(x1 - x0, 1e-6), fitY = (this.cssHeight - 2 * pad) / Math.max(y1 - y0, 1e-6);
    this.zoom = Math.min(1e6, Math.max(10, Math.min(fitX, fitY)));
    this.fitZoom = this.zoom;
    this.requestDraw();
  }

  pointSize() {
    const base = this.fitZoom || (Math.min(this.cssWidth, this.cssHeight) / 2) * 0.92;
    return Math.min(16, this.baseSize * Math.sqrt(Math.max(1, this.zoom / base)));
  }

  // CSS pixel (relative to the canvas) <-> world.
  toWorld(px, py) {
    return [(px - this.cssWidth / 2) / this.zoom + this.center[0], (this.cssHeight / 2 - py) / this.zoom + this.center[1]];
  }

  toScreen(i) {
    const x = this.pos[2 * i], y = this.pos[2 * i + 1];
    return [(x - this.center[0]) * this.zoom + this.cssWidth / 2, this.cssHeight / 2 - (y - this.center[1]) * this.zoom];
  }

  panBy(dx, dy) {
    this.center[0] -= dx / this.zoom;
    this.center[1] += dy / this.zoom;
    this.moved();
    this.requestDraw();
  }

  zoomAt(px, py, factor) {
    const [wx, wy] = this.toWorld(px, py);
    this.zoom = Math.min(1e6, Math.max(10, this.zoom * factor));
    this.center[0] = wx - (px - this.cssWidth / 2) / this.zoom;
    this.center[1] = wy - (this.cssHeight / 2 - py) / this.zoom;
    this.moved();
    this.requestDraw();
  }

  // How many points the current view shows (at most `limit`: counting stops there).
  visibleCount(limit = 1) {
    const [x0, y1] = this.toWorld(0, 0), [x1, y0] = this.toWorld(this.cssWidth, this.cssHeight);
    const pos = this.pos;
    let n = 0;
    for (let i = 0; i < this.n && n < limit; i++) {
      const x = pos[2 * i], y = pos[2 * i + 1];
      if (x >= x0 && x <= x1 && y >= y0 && y <= y1) n++;
    }
    return n;
  }

  // The point under a CSS pixel position, or -1.
  pick(px, py, radiusPx) {
    const [wx, wy] = this.toWorld(px, py);
    const r = (radiusPx ?? Math.max(6, this.pointSize() / 2 + 2)) / this.zoom;
    return this.grid.nearest(wx, wy, r);
  }

  // Indices of the points inside a polygon given in CSS pixels ([x0, y0, x1, y1, ...]).
  lasso(screenPoly) {
    const poly = new Float64Array(screenPoly.length);
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let k = 0; k < screenPoly.length; k += 2) {
      const [wx, wy] = this.toWorld(screenPoly[k], screenPoly[k + 1]);
      poly[k] = wx; poly[k + 1] = wy;
      minX = Math.min(minX, wx); maxX = Math.max(maxX, wx); minY = Math.min(minY, wy); maxY = Math.max(maxY, wy);
    }
    const out = [];
    const pos = this.pos;
    for (let i = 0; i < this.n; i++) {
      const x = pos[2 * i], y = pos[2 * i + 1];
      if (x < minX || x > maxX || y < minY || y > maxY) continue;
      if (pointInPolygon(x, y, poly)) out.push(i);
    }
    return out;
  }

  requestDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  // One frame: every point, or the first `budget` (a uniform sample) while the view is moving.
  draw(count) {
    const gl = this.gl;
    if (count === undefined) count = performance.now() < this.movingUntil ? this.budget : this.n;
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.uniform2f(this.u.u_center, this.center[0], this.center[1]);
    gl.uniform2f(this.u.u_scale, (2 * this.zoom) / this.cssWidth, (2 * this.zoom) / this.cssHeight);
    gl.uniform1f(this.u.u_mode, this.mode);
    gl.uniform1f(this.u.u_size, this.pointSize() * this.dpr);
    gl.uniform1f(this.u.u_hasSel, this.selCount > 0 ? 1 : 0);
    gl.drawArrays(gl.POINTS, 0, count);
    this.lastCount = count;
    this.drawCalls++;
    this.frames++;
    if (this.onDraw) this.onDraw(count < this.n); // layers above the points (thumbnails) follow the view
  }
}

// Draws now and counts the pixels that are not background (a check that points really render).
Scatter.prototype.paintedPixels = function paintedPixels() {
  const gl = this.gl;
  this.draw(this.n);
  const w = this.canvas.width, h = this.canvas.height;
  const px = new Uint8Array(w * h * 4);
  gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
  let n = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i] < 250 || px[i + 1] < 250 || px[i + 2] < 250) n++;
  return n;
};

// A fixed pseudo-random permutation of 0..n-1 (Fisher-Yates with a seeded generator).
function shuffled(n) {
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  let seed = 0x2545f491;
  for (let i = n - 1; i > 0; i--) {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    const j = (seed >>> 0) % (i + 1);
    const t = perm[i]; perm[i] = perm[j]; perm[j] = t;
  }
  return perm;
}

function normalise(xs, ys) {
  const n = xs.length;
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = +xs[i], y = +ys[i];
    if (x < minX) minX = x; if (x > maxX) maxX = x;
    if (y < minY) minY = y; if (y > maxY) maxY = y;
  }
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  const half = Math.max(maxX - minX, maxY - minY) / 2 || 1;
  const pos = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    pos[2 * i] = (xs[i] - cx) / half;
    pos[2 * i + 1] = (ys[i] - cy) / half;
  }
  return pos;
}
