// The c-plane: the Mandelbrot set drawn by the server in tiles (GET /v1/map), with the
// animation's c, its path points and the path itself drawn over it. Drag to pan, wheel or
// pinch to zoom; drag the c marker or a point to move it; click to place c (rotate) or to
// add a point (line, keyframes). Keyboard: arrows pan, Shift+arrows move c, + and - zoom,
// Enter places c or adds a point at the centre cross, Backspace removes the last point.

const HANDLE_RADIUS = 12; // CSS pixels within which a press grabs a marker
const CLICK_SLOP = 4; // a press that moves less than this is a click

export class CPlaneMap {
  constructor(element, info, callbacks) {
    this.element = element;
    this.info = info;
    this.callbacks = callbacks; // onC(c, final), onPoints(points, final)
    this.canvas = element.querySelector("canvas");
    this.context = this.canvas.getContext("2d");
    this.view = { re: -0.6, im: 0, perPixel: 0.0075 };
    this.c = { re: -0.8, im: -0.18 };
    this.mode = "rotate";
    this.points = [];
    this.pathSamples = [];
    this.frameC = null;
    this.tiles = new Map(); // "z/x/y" -> { image, ready }
    this.pointers = new Map();
    this.gesture = null;
    this.scheduled = false;
    this.bind();
    new ResizeObserver(() => this.resize()).observe(element);
    this.resize();
  }

  // -- coordinates ----------------------------------------------------------------------

  get width() {
    return this.element.clientWidth;
  }

  get height() {
    return this.element.clientHeight;
  }

  toScreen(point) {
    return {
      x: this.width / 2 + (point.re - this.view.re) / this.view.perPixel,
      y: this.height / 2 - (point.im - this.view.im) / this.view.perPixel,
    };
  }

  toPlane(x, y) {
    return {
      re: this.view.re + (x - this.width / 2) * this.view.perPixel,
      im: this.view.im - (y - this.height / 2) * this.view.perPixel,
    };
  }

  eventPoint(event) {
    const box = this.element.getBoundingClientRect();
    return { x: event.clientX - box.left, y: event.clientY - box.top };
  }

  // -- state from outside ---------------------------------------------------------------

  setC(c) {
    this.c = { re: Number(c.re), im: Number(c.im) };
    this.draw();
  }

  setPath(mode, points) {
    this.mode = mode;
    this.points = (points || []).map((p) => ({ re: Number(p.re), im: Number(p.im) }));
    this.draw();
  }

  setSamples(samples) {
    this.pathSamples = samples || [];
    this.draw();
  }

  setFrameC(c) {
    this.frameC = c;
    this.draw();
  }

  zoomBy(factor, x = this.width / 2, y = this.height / 2) {
    const anchor = this.toPlane(x, y);
    const extent = this.info.extent;
    const finest = (2 * extent) / 2 ** this.info.max_zoom / this.info.tile_size;
    const coarsest = (4 * extent) / Math.max(64, Math.min(this.width, this.height));
    this.view.perPixel = Math.min(coarsest, Math.max(finest, this.view.perPixel / factor));
    // Keep the point under the cursor where it is.
    this.view.re = anchor.re - (x - this.width / 2) * this.view.perPixel;
    this.view.im = anchor.im + (y - this.height / 2) * this.view.perPixel;
    this.clampView();
    this.draw();
  }

  panBy(dx, dy) {
    this.view.re -= dx * this.view.perPixel;
    this.view.im += dy * this.view.perPixel;
    this.clampView();
    this.draw();
  }

  clampView() {
    const limit = this.info.extent;
    this.view.re = Math.min(limit, Math.max(-limit, this.view.re));
    this.view.im = Math.min(limit, Math.max(-limit, this.view.im));
  }

  reset() {
    this.view = { re: -0.6, im: 0, perPixel: 3.2 / Math.max(200, Math.min(this.width, this.height * 1.3)) };
    this.draw();
  }

  // -- input ----------------------------------------------------------------------------

  handleAt(x, y) {
    const near = (point) => {
      const s = this.toScreen(point);
      return Math.hypot(s.x - x, s.y - y) <= HANDLE_RADIUS;
    };
    if (this.mode !== "rotate") {
      for (let index = this.points.length - 1; index >= 0; index--) {
        if (near(this.points[index])) return { kind: "point", index };
      }
    }
    if (near(this.c)) return { kind: "c" };
    return null;
  }

  bind() {
    const element = this.element;
    element.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 && event.pointerType === "mouse") return;
      element.setPointerCapture(event.pointerId);
      const at = this.eventPoint(event);
      this.pointers.set(event.pointerId, at);
      if (this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        this.gesture = { kind: "pinch", distance: Math.hypot(a.x - b.x, a.y - b.y) };
        return;
      }
      const handle = this.handleAt(at.x, at.y);
      this.gesture = { kind: handle ? "handle" : "pan", handle, start: at, last: at, moved: false };
      if (handle) element.classList.add("dragging");
    });
    element.addEventListener("pointermove", (event) => {
      if (!this.pointers.has(event.pointerId)) {
        const at = this.eventPoint(event);
        element.classList.toggle("over-handle", Boolean(this.handleAt(at.x, at.y)));
        return;
      }
      const at = this.eventPoint(event);
      this.pointers.set(event.pointerId, at);
      const gesture = this.gesture;
      if (!gesture) return;
      if (gesture.kind === "pinch" && this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        const distance = Math.hypot(a.x - b.x, a.y - b.y);
        if (gesture.distance > 0) this.zoomBy(distance / gesture.distance, (a.x + b.x) / 2, (a.y + b.y) / 2);
        gesture.distance = distance;
        return;
      }
      if (Math.hypot(at.x - gesture.start.x, at.y - gesture.start.y) > CLICK_SLOP) gesture.moved = true;
      if (!gesture.moved) return;
      if (gesture.kind === "pan") {
        this.panBy(at.x - gesture.last.x, at.y - gesture.last.y);
      } else {
        this.moveHandle(gesture.handle, this.toPlane(at.x, at.y), false);
      }
      gesture.last = at;
    });
    const finish = (event) => {
      if (!this.pointers.has(event.pointerId)) return;
      this.pointers.delete(event.pointerId);
      const gesture = this.gesture;
      element.classList.remove("dragging");
      if (this.pointers.size > 0) return;
      this.gesture = null;
      if (!gesture || gesture.kind === "pinch" || event.type === "pointercancel") return;
      const at = this.eventPoint(event);
      if (gesture.kind === "handle" && gesture.moved) {
        this.moveHandle(gesture.handle, this.toPlane(at.x, at.y), true);
      } else if (!gesture.moved) {
        this.place(this.toPlane(at.x, at.y));
      }
    };
    element.addEventListener("pointerup", finish);
    element.addEventListener("pointercancel", finish);
    element.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const at = this.eventPoint(event);
        const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
        this.zoomBy(Math.exp(-delta * 0.002), at.x, at.y);
      },
      { passive: false },
    );
    element.addEventListener("keydown", (event) => this.key(event));
  }

  key(event) {
    const step = 40;
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (arrows[event.key]) {
      const [dx, dy] = arrows[event.key];
      if (event.shiftKey) {
        const moved = {
          re: this.c.re + dx * this.view.perPixel * 4,
          im: this.c.im - dy * this.view.perPixel * 4,
        };
        this.moveHandle({ kind: "c" }, moved, true);
      } else {
        this.panBy(-dx * step, -dy * step);
      }
    } else if (event.key === "+" || event.key === "=") {
      this.zoomBy(1.5);
    } else if (event.key === "-" || event.key === "_") {
      this.zoomBy(1 / 1.5);
    } else if (event.key === "Enter" || event.key === " ") {
      this.place({ re: this.view.re, im: this.view.im });
    } else if (event.key === "Backspace" || event.key === "Delete") {
      if (this.mode === "rotate" || !this.points.length) return;
      this.points = this.points.slice(0, -1);
      this.callbacks.onPoints(this.points, true);
      this.draw();
    } else if (event.key === "0") {
      this.reset();
    } else {
      return;
    }
    event.preventDefault();
  }

  place(point) {
    if (this.mode === "rotate") {
      this.moveHandle({ kind: "c" }, point, true);
    } else {
      const rounded = { re: roundTo(point.re, this.view.perPixel), im: roundTo(point.im, this.view.perPixel) };
      this.points = [...this.points, rounded];
      this.callbacks.onPoints(this.points, true);
      this.draw();
    }
  }

  moveHandle(handle, point, final) {
    const rounded = { re: roundTo(point.re, this.view.perPixel), im: roundTo(point.im, this.view.perPixel) };
    if (handle.kind === "c") {
      this.c = rounded;
      this.callbacks.onC(rounded, final);
    } else {
      this.points = this.points.map((p, index) => (index === handle.index ? rounded : p));
      this.callbacks.onPoints(this.points, final);
    }
    this.draw();
  }

  // -- drawing --------------------------------------------------------------------------

  resize() {
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(this.width * ratio));
    this.canvas.height = Math.max(1, Math.round(this.height * ratio));
    if (!this.sized && this.width > 0) {
      this.sized = true;
      this.reset();
    }
    this.draw();
  }

  draw() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.paint();
    });
  }

  tileZoom() {
    const ratio = window.devicePixelRatio || 1;
    const wanted = Math.log2((2 * this.info.extent * ratio) / (this.info.tile_size * this.view.perPixel));
    return Math.max(0, Math.min(this.info.max_zoom, Math.ceil(wanted - 0.25)));
  }

  tile(z, x, y) {
    const key = `${z}/${x}/${y}`;
    let entry = this.tiles.get(key);
    if (!entry) {
      const image = new Image();
      entry = { image, ready: false, failed: false };
      image.decoding = "async";
      image.onload = () => {
        entry.ready = true;
        this.draw();
      };
      image.onerror = () => {
        entry.failed = true;
        // Refused (a rate limit, say): try again a little later.
        setTimeout(() => this.tiles.delete(key), 3000);
      };
      image.src = this.info.tile_url.replace("{z}", z).replace("{x}", x).replace("{y}", y);
      this.tiles.set(key, entry);
      if (this.tiles.size > 600) this.tiles.delete(this.tiles.keys().next().value);
    }
    return entry;
  }

  // The best image for tile (z, x, y): itself, or the part of a loaded ancestor over it.
  drawTile(z, x, y, dx, dy, size) {
    const own = this.tile(z, x, y);
    const context = this.context;
    if (own.ready) {
      context.drawImage(own.image, dx, dy, size, size);
      return;
    }
    for (let up = 1; up <= Math.min(z, 6); up++) {
      const key = `${z - up}/${x >> up}/${y >> up}`;
      const parent = this.tiles.get(key);
      if (!parent?.ready) continue;
      const part = this.info.tile_size / 2 ** up;
      const sx = (x - ((x >> up) << up)) * part;
      const sy = (y - ((y >> up) << up)) * part;
      context.drawImage(parent.image, sx, sy, part, part, dx, dy, size, size);
      return;
    }
  }

  paint() {
    const ratio = window.devicePixelRatio || 1;
    const context = this.context;
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.fillStyle = "#0b1020";
    context.fillRect(0, 0, this.width, this.height);
    const extent = this.info.extent;
    const z = this.tileZoom();
    const count = 2 ** z;
    const side = (2 * extent) / count; // plane units per tile
    const topLeft = this.toPlane(0, 0);
    const bottomRight = this.toPlane(this.width, this.height);
    const x0 = Math.max(0, Math.floor((topLeft.re + extent) / side));
    const x1 = Math.min(count - 1, Math.floor((bottomRight.re + extent) / side));
    const y0 = Math.max(0, Math.floor((extent - topLeft.im) / side));
    const y1 = Math.min(count - 1, Math.floor((extent - bottomRight.im) / side));
    const size = side / this.view.perPixel;
    context.imageSmoothingEnabled = true;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const corner = this.toScreen({ re: -extent + x * side, im: extent - y * side });
        // Whole pixels, one pixel of overlap: no hairline seams between tiles.
        this.drawTile(z, x, y, Math.floor(corner.x), Math.floor(corner.y), Math.ceil(size) + 1);
      }
    }
    this.paintOverlay();
  }

  paintOverlay() {
    const context = this.context;
    // The path as the server computes it (c at sampled frames).
    if (this.pathSamples.length > 1) {
      context.beginPath();
      this.pathSamples.forEach((sample, index) => {
        const s = this.toScreen(sample);
        if (index === 0) context.moveTo(s.x, s.y);
        else context.lineTo(s.x, s.y);
      });
      context.strokeStyle = "rgba(255, 214, 102, 0.95)";
      context.lineWidth = 2;
      context.stroke();
    }
    // The control polyline: c, then the points in order.
    if (this.mode !== "rotate" && this.points.length) {
      context.beginPath();
      [this.c, ...this.points].forEach((point, index) => {
        const s = this.toScreen(point);
        if (index === 0) context.moveTo(s.x, s.y);
        else context.lineTo(s.x, s.y);
      });
      context.setLineDash([5, 4]);
      context.strokeStyle = "rgba(255, 255, 255, 0.7)";
      context.lineWidth = 1.5;
      context.stroke();
      context.setLineDash([]);
      this.points.forEach((point, index) => {
        const s = this.toScreen(point);
        context.beginPath();
        context.arc(s.x, s.y, 7, 0, Math.PI * 2);
        context.fillStyle = "#1f2a44";
        context.fill();
        context.strokeStyle = "#ffd666";
        context.lineWidth = 2;
        context.stroke();
        context.fillStyle = "#ffd666";
        context.font = "600 10px system-ui, sans-serif";
        context.textAlign = "center";
        context.textBaseline = "middle";
        context.fillText(String(index + 1), s.x, s.y + 0.5);
      });
    }
    // c, the start of the animation (its place is published for scripts driving the page).
    const c = this.toScreen(this.c);
    this.element.dataset.c = `${this.c.re},${this.c.im}`;
    this.element.dataset.cScreen = `${c.x.toFixed(1)},${c.y.toFixed(1)}`;
    context.beginPath();
    context.arc(c.x, c.y, 8, 0, Math.PI * 2);
    context.fillStyle = "rgba(255, 92, 122, 0.25)";
    context.fill();
    context.lineWidth = 2.5;
    context.strokeStyle = "#ff5c7a";
    context.stroke();
    // Where c is at the frame the preview shows.
    if (this.frameC) {
      const f = this.toScreen(this.frameC);
      context.beginPath();
      context.arc(f.x, f.y, 4, 0, Math.PI * 2);
      context.fillStyle = "#ffffff";
      context.fill();
    }
    // The centre cross the keyboard works on.
    if (document.activeElement === this.element) {
      const x = this.width / 2;
      const y = this.height / 2;
      context.beginPath();
      context.moveTo(x - 8, y);
      context.lineTo(x + 8, y);
      context.moveTo(x, y - 8);
      context.lineTo(x, y + 8);
      context.strokeStyle = "rgba(255, 255, 255, 0.9)";
      context.lineWidth = 1;
      context.stroke();
    }
  }
}

// A coordinate rounded to the digits the view can show (no 17-digit noise in the spec).
function roundTo(value, perPixel) {
  const digits = Math.max(2, Math.min(15, Math.ceil(-Math.log10(perPixel)) + 1));
  return Number(value.toFixed(digits));
}
