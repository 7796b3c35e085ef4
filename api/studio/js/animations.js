// "My animations": the user's renders, newest first, a page at a time. Active ones follow
// their live progress (Server-Sent Events read with fetch); finished ones play inline.

import { ApiProblem, getJson, readEvents, request } from "./api.js";
import { clear, confirmDialog, h, toast } from "./dom.js";
import { ago, bytes, complexText, seconds, trim } from "./format.js";

const PAGE = 8;
const ACTIVE = new Set(["queued", "running"]);

function summary(spec) {
  const c = spec.c ? complexText(spec.c.re, spec.c.im, 4) : "";
  const size = `${spec.width}×${spec.height}`;
  const length = spec.duration ? `${trim(spec.duration, 2)} s` : `${spec.frames} frames`;
  return `${spec.fractal || "julia"} · c = ${c} · ${spec.path?.kind || "rotate"} · ${size} · ${length}`;
}

export class Library {
  constructor(element, { onEditCopy }) {
    this.element = element;
    this.list = element.querySelector("[data-role=list]");
    this.more = element.querySelector("[data-role=more]");
    this.empty = element.querySelector("[data-role=empty]");
    this.onEditCopy = onEditCopy;
    this.cards = new Map(); // id -> { task, element, parts, stream }
    this.cursor = null;
    this.more.addEventListener("click", () => this.load(this.cursor));
  }

  reset() {
    for (const card of this.cards.values()) card.stream?.abort();
    this.cards.clear();
    clear(this.list);
    this.cursor = null;
    this.more.hidden = true;
    this.empty.hidden = true;
  }

  async load(cursor = null) {
    if (!cursor) this.reset();
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await getJson(`/v1/animations?${query}`);
      for (const task of page.items) this.add(task, false);
      this.cursor = page.next_cursor;
      this.more.hidden = !page.next_cursor;
      this.empty.hidden = this.cards.size > 0;
    } catch (problem) {
      if (problem instanceof ApiProblem && problem.status !== 401) toast(problem.message, "error");
    }
  }

  // A card for the task (at the top when it is new), following it while it is active.
  add(task, first = true) {
    if (this.cards.has(task.id)) return this.update(task);
    const card = this.card(task);
    this.cards.set(task.id, card);
    if (first) this.list.prepend(card.element);
    else this.list.append(card.element);
    this.empty.hidden = true;
    this.update(task);
    if (ACTIVE.has(task.state)) this.follow(card);
  }

  card(task) {
    const parts = {
      poster: h("div", { class: "poster" }),
      state: h("span", { class: "state" }),
      bar: h("div", {
        class: "bar",
        role: "progressbar",
        "aria-valuemin": "0",
        "aria-valuemax": "100",
        "aria-label": "Render progress",
      }, h("div", { class: "fill" })),
      progress: h("span", { class: "progress-text" }),
      waiting: h("p", { class: "card-waiting", role: "status" }),
      actions: h("div", { class: "actions" }),
      error: h("p", { class: "card-error", role: "alert" }),
    };
    const element = h(
      "li",
      { class: "card", dataset: { id: task.id } },
      parts.poster,
      h(
        "div",
        { class: "card-body" },
        h("p", { class: "card-title" }, summary(task.spec)),
        h("p", { class: "card-meta" }, parts.state, " · ", ago(task.created_at)),
        parts.bar,
        parts.progress,
        parts.waiting,
        parts.error,
        parts.actions,
      ),
    );
    return { task, element, parts, stream: null, playing: false };
  }

  update(task) {
    const card = this.cards.get(task.id);
    if (!card) return;
    card.task = task;
    const { parts } = card;
    const { frames_done: done, frames_total: total, percent, eta_seconds: eta } = task.progress;
    card.element.dataset.state = task.state;
    card.element.dataset.waiting = task.waiting ? task.waiting.reason : "";
    parts.state.textContent = task.cancel_requested ? `${task.state}, canceling…` : task.state;
    parts.state.className = `state state-${task.state}`;
    // Why nobody renders it (no worker, the render service unreachable), once it has waited.
    parts.waiting.textContent = task.waiting ? task.waiting.message : "";
    parts.waiting.title = task.waiting ? `since ${new Date(task.waiting.since).toLocaleString()}` : "";
    parts.bar.querySelector(".fill").style.width = `${percent}%`;
    parts.bar.setAttribute("aria-valuenow", String(percent));
    const details = [`${done} / ${total} frames`];
    if (task.state === "running" && eta !== null && eta !== undefined) details.push(`ETA ${seconds(eta)}`);
    if (task.state === "succeeded" && task.video_size) details.push(bytes(task.video_size));
    parts.progress.textContent = `${details.join(" · ")} (${percent}%)`;
    parts.error.textContent = task.error || "";
    if (!card.playing) this.drawPoster(card);
    this.drawActions(card);
  }

  drawPoster(card) {
    const { task, parts } = card;
    if (task.poster_url) {
      parts.poster.replaceChildren(
        h("img", { src: task.poster_url, alt: "", loading: "lazy", width: 160, height: 120 }),
      );
    } else {
      parts.poster.replaceChildren(h("span", { class: "poster-state" }, task.state));
    }
  }

  drawActions(card) {
    const { task, parts } = card;
    const buttons = [];
    if (task.state === "succeeded" && task.video_url) {
      buttons.push(
        h("button", { type: "button", class: "primary", onclick: () => this.play(card) }, card.playing ? "Close player" : "Play"),
        h("a", { class: "button", href: task.video_url, download: `fractal-${task.id.slice(0, 8)}.mp4` }, "Download"),
      );
    }
    if (ACTIVE.has(task.state) && !task.cancel_requested) {
      buttons.push(h("button", { type: "button", onclick: () => this.cancel(card) }, "Cancel"));
    }
    buttons.push(h("button", { type: "button", onclick: () => this.onEditCopy(task.spec) }, "Edit a copy"));
    if (!ACTIVE.has(task.state)) {
      buttons.push(h("button", { type: "button", class: "danger", onclick: () => this.remove(card) }, "Delete"));
    }
    parts.actions.replaceChildren(...buttons);
  }

  play(card) {
    const { task, parts } = card;
    card.playing = !card.playing;
    if (card.playing) {
      const video = h("video", {
        src: task.video_url,
        poster: task.poster_url || undefined,
        controls: true,
        autoplay: true,
        loop: true,
        muted: true,
        playsinline: true,
        preload: "auto",
        width: task.spec.width,
        height: task.spec.height,
      });
      video.muted = true; // autoplay is allowed muted
      parts.poster.replaceChildren(video);
      card.element.classList.add("playing");
    } else {
      card.element.classList.remove("playing");
      this.drawPoster(card);
    }
    this.drawActions(card);
    if (card.playing) parts.poster.querySelector("video")?.focus();
  }

  async follow(card, attempt = 0) {
    card.stream?.abort();
    const controller = new AbortController();
    card.stream = controller;
    try {
      await readEvents(
        `/v1/animations/${card.task.id}/events`,
        (event) => {
          if (event.event === "progress") this.update(JSON.parse(event.data));
          if (event.event === "gone") this.drop(card.task.id);
        },
        controller.signal,
      );
      attempt = 0;
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error instanceof ApiProblem && [401, 404].includes(error.status)) return;
    }
    // The stream ended early (a dropped connection, the server's hourly cut): reconnect.
    if (!controller.signal.aborted && this.cards.has(card.task.id) && ACTIVE.has(card.task.state)) {
      setTimeout(() => this.follow(card, attempt + 1), Math.min(30000, 1000 * 2 ** attempt));
    }
  }

  drop(id) {
    const card = this.cards.get(id);
    if (!card) return;
    card.stream?.abort();
    card.element.remove();
    this.cards.delete(id);
    this.empty.hidden = this.cards.size > 0;
  }

  // A cancel never deletes: one that comes too late (the render just finished) leaves the
  // video, and the card shows it.
  async cancel(card) {
    try {
      const response = await request("POST", `/v1/animations/${card.task.id}/cancel`);
      const task = await response.json();
      this.update(task);
      toast(task.state === "canceled" ? "Canceled." : "Cancelling…");
    } catch (problem) {
      if (problem instanceof ApiProblem && problem.status === 409) {
        toast("Too late to cancel: it has just finished.");
        try {
          this.update(await getJson(`/v1/animations/${card.task.id}`));
        } catch {
          // the card stays as it was
        }
        return;
      }
      toast(problem.message, "error");
    }
  }

  async remove(card) {
    const confirmed = await confirmDialog(
      "Delete this animation?",
      "Its video and poster are deleted for good.",
      "Delete",
    );
    if (!confirmed) return;
    try {
      await request("DELETE", `/v1/animations/${card.task.id}`);
      this.drop(card.task.id);
      toast("Animation deleted.");
    } catch (problem) {
      toast(problem.message, "error");
    }
  }
}
