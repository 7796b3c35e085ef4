// The live preview: one frame of the spec drawn by the server (GET /v1/preview). While c is
// dragged or the frame slider moves, at most one request is in flight and the newest
// wish is drawn next, so the image follows the hand without a queue building up.

import { ApiProblem, request } from "./api.js";

export const PREVIEW_BOX = { width: 480, height: 360 };

// The preview's size: the spec's aspect within the box, even numbers.
export function previewSize(spec) {
  const width = Number(spec.width) || 800;
  const height = Number(spec.height) || 600;
  const factor = Math.min(PREVIEW_BOX.width / width, PREVIEW_BOX.height / height);
  const even = (value) => Math.max(16, Math.round(value / 2) * 2);
  return { width: even(width * factor), height: even(height * factor) };
}

export function previewUrl(spec, frame, size) {
  // Drawn without supersampling: a preview is a draft, the render uses the spec's.
  const { supersample, ...draft } = spec;
  const query = new URLSearchParams({
    spec: JSON.stringify(draft),
    frame: String(frame),
    width: String(size.width),
    height: String(size.height),
  });
  return `/v1/preview?${query}`;
}

export class LivePreview {
  constructor(image, status, onProblem) {
    this.image = image;
    this.status = status;
    this.onProblem = onProblem; // (problem | null) => void
    this.inFlight = false;
    this.wanted = null;
    this.shownUrl = null;
    this.objectUrl = null;
  }

  show(spec, frame, defaults) {
    const full = { ...defaults, ...spec };
    const size = previewSize(full);
    this.wanted = { url: previewUrl(spec, frame, size), size, frame };
    this.pump();
  }

  async pump() {
    if (this.inFlight || !this.wanted || this.wanted.url === this.shownUrl) return;
    const wish = this.wanted;
    this.inFlight = true;
    const started = performance.now();
    try {
      const response = await request("GET", wish.url);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      await new Promise((resolve) => {
        this.image.onload = resolve;
        this.image.onerror = resolve;
        this.image.src = url;
      });
      if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = url;
      this.shownUrl = wish.url;
      this.image.width = wish.size.width;
      this.image.height = wish.size.height;
      this.image.alt = `Preview of frame ${wish.frame}`;
      this.image.dataset.frame = String(wish.frame);
      const timing = response.headers.get("Server-Timing") || "";
      const server = [...timing.matchAll(/dur=([\d.]+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
      const total = performance.now() - started;
      this.status.textContent = timing.includes("cache")
        ? `${wish.size.width}×${wish.size.height} · cached · ${total.toFixed(0)} ms`
        : `${wish.size.width}×${wish.size.height} · server ${server.toFixed(0)} ms · ${total.toFixed(0)} ms`;
      this.onProblem(null);
    } catch (problem) {
      this.shownUrl = wish.url; // do not ask again for what was refused
      if (problem instanceof ApiProblem) this.onProblem(problem);
      if (problem instanceof ApiProblem && problem.status === 429 && problem.retryAfter) {
        setTimeout(() => {
          this.shownUrl = null;
          this.pump();
        }, problem.retryAfter * 1000);
      }
    } finally {
      this.inFlight = false;
    }
    this.pump();
  }
}
