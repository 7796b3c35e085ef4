// The studio: explore c on the map with a live preview, shape the path, set the render,
// sign in, render and watch. Everything it shows comes from this server's API.

import { ApiProblem, getJson, postJson } from "./api.js";
import { Library } from "./animations.js";
import { confirmDialog, h, toast } from "./dom.js";
import { bytes, seconds, trim } from "./format.js";
import { SpecForm } from "./form.js";
import { CPlaneMap } from "./map.js";
import { pictureFraction, planeOffset, shiftDecimal, shownScale } from "./navigate.js";
import { LivePreview } from "./preview.js";
import { Session } from "./session.js";

const PRESETS = [
  ["480p", 854, 480],
  ["720p", 1280, 720],
  ["1080p", 1920, 1080],
  ["4K", 3840, 2160],
];
// What the studio starts from: a short, small animation a person can render at once.
const STARTER = { c: { re: -0.8, im: -0.18 }, width: 854, height: 480, duration: 4 };

const $ = (selector) => document.querySelector(selector);

async function main() {
  const [schema, mapInfo] = await Promise.all([getJson("/v1/spec/schema"), getJson("/v1/map")]);
  const session = new Session();
  const defaults = Object.fromEntries(
    Object.entries(schema.properties).map(([name, node]) => [name, node.default]),
  );

  let frame = 0;
  let estimate = null;
  let estimateTimer = null;
  let estimateVersion = 0;

  // -- the spec form (built from the schema) -------------------------------------------
  const form = new SpecForm(schema, { onChange: (path) => specChanged(path) });
  const presetSelect = h(
    "select",
    { id: "size-preset", "aria-describedby": "size-preset-hint" },
    PRESETS.map(([name, w, ht]) => h("option", { value: `${w}x${ht}` }, `${name} (${w}×${ht})`)),
    h("option", { value: "custom" }, "Custom"),
  );
  presetSelect.addEventListener("change", () => {
    if (presetSelect.value === "custom") return;
    const [width, height] = presetSelect.value.split("x").map(Number);
    form.put(["width"], width);
    form.put(["height"], height);
    form.changed(["width"]);
  });
  const presetField = h(
    "div",
    { class: "field" },
    h("label", { for: "size-preset" }, "Size"),
    presetSelect,
    h("p", { class: "hint", id: "size-preset-hint" }, "or set width and height below"),
  );
  form.mount($("#settings-fields"), { except: ["c", "path"], before: { width: presetField } });
  form.mount($("#c-field"), { names: ["c"] });
  form.mount($("#path-field"), { names: ["path"] });

  // -- the map and the preview ---------------------------------------------------------
  const map = new CPlaneMap($("#map"), mapInfo, {
    onC: (c, final) => {
      form.put(["c"], { re: c.re, im: c.im });
      form.refresh();
      specChanged("c", !final);
    },
    onPoints: (points) => {
      const path = form.get(["path"]) || { kind: "rotate" };
      form.put(["path"], { ...path, points: points.map((p) => ({ re: p.re, im: p.im })) });
      form.refresh();
      specChanged("path");
    },
  });
  $("#map").addEventListener("focus", () => map.draw());
  $("#map").addEventListener("blur", () => map.draw());
  $("#zoom-in").addEventListener("click", () => map.zoomBy(1.5));
  $("#zoom-out").addEventListener("click", () => map.zoomBy(1 / 1.5));
  $("#zoom-reset").addEventListener("click", () => map.reset());
  $("#clear-points").addEventListener("click", () => {
    const path = form.get(["path"]);
    if (!path || !("points" in path)) return;
    form.put(["path"], { ...path, points: [] });
    form.refresh();
    specChanged("path");
  });

  const previewError = $("#preview-error");
  const preview = new LivePreview($("#preview-image"), $("#preview-status"), (problem) => {
    previewError.textContent = problem ? problem.message : "";
  });

  // -- exploring in the preview: click to centre, wheel to zoom (navigate.js) ------------
  const image = $("#preview-image");
  const asNumberIfExact = (text) => (String(Number(text)) === text ? Number(text) : text);

  function shownView() {
    const spec = { ...defaults, ...currentSpec() };
    const scale = shownScale(spec, defaults, frameCount(), frame);
    if (scale === null || !Number.isFinite(scale)) return null;
    const aspect = Number(spec.width) / Number(spec.height);
    return { spec, scale, aspect, rotation: Number(spec.rotation ?? 0) };
  }

  // Moves the view's centre by `fraction` of the offset from it to the point under the
  // pointer (1: that point becomes the centre); returns the view, or null off the picture.
  function moveCentre(event, fraction) {
    const view = shownView();
    const where = pictureFraction(image, event);
    if (!view || !where) return null;
    const offset = planeOffset(where, view.aspect, view.scale, view.rotation);
    const centre = view.spec.center ?? { re: 0, im: 0 };
    form.put(["center"], {
      re: asNumberIfExact(shiftDecimal(centre.re, offset.re * fraction, view.scale)),
      im: asNumberIfExact(shiftDecimal(centre.im, offset.im * fraction, view.scale)),
    });
    return view;
  }

  image.addEventListener("click", (event) => {
    if (!moveCentre(event, 1)) return;
    form.refresh();
    specChanged("center");
  });
  image.addEventListener(
    "wheel",
    (event) => {
      const camera = form.get(["camera"]) ?? defaults.camera;
      if (camera && camera.kind !== "still") return; // a moving camera's scales are its own
      event.preventDefault();
      const factor = event.deltaY < 0 ? 1 / 1.5 : 1.5;
      // The point under the pointer stays there: the centre moves by (1 - factor) of it.
      const view = moveCentre(event, 1 - factor);
      if (!view) return;
      form.put(["scale"], Number((view.scale * factor).toPrecision(12)));
      form.refresh();
      specChanged("scale");
    },
    { passive: false },
  );

  const slider = $("#frame");
  const frameLabel = $("#frame-label");
  slider.addEventListener("input", () => {
    frame = Number(slider.value);
    showFrame();
  });
  let playing = null;
  $("#play-preview").addEventListener("click", () => {
    const button = $("#play-preview");
    if (playing) {
      clearInterval(playing);
      playing = null;
      button.textContent = "Play";
      button.setAttribute("aria-pressed", "false");
      return;
    }
    button.textContent = "Pause";
    button.setAttribute("aria-pressed", "true");
    const fps = Number(form.get(["fps"]) ?? defaults.fps ?? 24);
    playing = setInterval(() => {
      frame = (frame + 1) % (Number(slider.max) + 1);
      slider.value = String(frame);
      showFrame();
    }, 1000 / Math.min(fps, 12));
  });

  function currentSpec() {
    return form.spec();
  }

  function frameCount() {
    return estimate ? estimate.frames : Number(slider.max) + 1;
  }

  function showFrame() {
    frame = Math.min(frame, frameCount() - 1);
    frameLabel.textContent = `frame ${frame + 1} / ${frameCount()}`;
    preview.show(currentSpec(), frame, defaults);
    const samples = estimate?.c_path || [];
    let nearest = null;
    for (const sample of samples) {
      if (!nearest || Math.abs(sample.frame - frame) < Math.abs(nearest.frame - frame)) nearest = sample;
    }
    map.setFrameC(nearest);
  }

  function syncMapFromSpec() {
    const c = form.get(["c"]) || defaults.c;
    map.setC(c);
    const path = form.get(["path"]) || { kind: "rotate" };
    map.setPath(path.kind, path.points || []);
    $("#clear-points").hidden = !("points" in path) && path.kind === "rotate";
    $("#path-help").textContent =
      path.kind === "rotate"
        ? "Click the map (or drag the red ring) to set c; the path turns c about 0."
        : "Click the map to add points after c; drag a point to move it.";
    const widthHeight = `${form.get(["width"]) ?? defaults.width}x${form.get(["height"]) ?? defaults.height}`;
    presetSelect.value = PRESETS.some(([, w, ht]) => `${w}x${ht}` === widthHeight) ? widthHeight : "custom";
  }

  // -- estimate and validation: the server decides -------------------------------------
  // The titles say what the panels show for the chosen fractal: c matters to the Julia
  // families only; the others take c from the pixel.
  function retitle() {
    const fractal = form.get(["fractal"]) ?? defaults.fractal ?? "julia";
    const usesC = fractal === "julia" || fractal.endsWith("_julia");
    const name = fractal.replace(/_julia$/, "").replaceAll("_", " ");
    const pretty = name.charAt(0).toUpperCase() + name.slice(1);
    $("#preview-title").textContent = usesC
      ? `${fractal === "julia" ? "Julia" : `${pretty} Julia`} set preview`
      : `${pretty} preview`;
    $("#map-title").textContent = usesC
      ? "Choose c on the Mandelbrot set"
      : "The Mandelbrot set · c applies to Julia fractals only";
  }

  function specChanged(path, dragging = false) {
    retitle();
    syncMapFromSpec();
    if (path === "c" || path.startsWith("c.")) {
      // While c moves, frame 0 is c itself: show it at once.
      if (dragging) {
        frame = 0;
        slider.value = "0";
      }
    }
    showFrame();
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(requestEstimate, dragging ? 400 : 150);
  }

  async function requestEstimate() {
    const version = ++estimateVersion;
    const renderButton = $("#render");
    try {
      const answer = await postJson("/v1/animations/estimate", currentSpec());
      if (version !== estimateVersion) return;
      estimate = answer;
      form.clearProblems();
      slider.max = String(answer.frames - 1);
      map.setSamples(answer.c_path);
      showEstimate(answer);
      renderButton.disabled = !answer.accepted;
      showFrame();
    } catch (problem) {
      if (version !== estimateVersion || !(problem instanceof ApiProblem)) return;
      if (problem.status === 422) {
        const unplaced = form.showProblems(problem.fields);
        $("#estimate").replaceChildren(
          h("p", { class: "refusal" }, "Fix the fields marked in red to render."),
          ...unplaced.map((item) => h("p", { class: "refusal" }, item.path ? `${item.path}: ${item.message}` : item.message)),
        );
        renderButton.disabled = true;
      } else {
        $("#estimate").replaceChildren(h("p", { class: "refusal" }, problem.message));
      }
    }
  }

  function showEstimate(answer) {
    const samples = answer.samples > answer.pixels ? ` × ${answer.samples / answer.pixels}` : "";
    const rows = [
      ["Video", `${answer.width}×${answer.height}${samples} · ${answer.frames} frames · ${trim(answer.duration, 2)} s`],
      ["CPU", `up to ${seconds(answer.cpu_seconds)} of CPU time (limit ${seconds(answer.max_cpu_seconds)})`],
      ["Memory", `up to ${bytes(answer.worker_memory_bytes)} of a worker's ${bytes(answer.max_worker_memory_bytes)}`],
      ["Size", `video up to ${bytes(answer.output_bytes)}`],
      ["Cost", `${trim(answer.relative_cost, 1)} standard frames in ${answer.chunks.length} chunks`],
    ];
    const list = h("dl", {}, rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
    const verdict = answer.accepted
      ? h("p", { class: "accepted" }, "The server would accept this render.")
      : h("p", { class: "refusal", role: "alert" }, answer.refusal);
    $("#estimate").replaceChildren(list, verdict);
  }

  // -- rendering -----------------------------------------------------------------------
  const library = new Library($("#library"), {
    onEditCopy: (spec) => {
      const copy = { ...spec };
      delete copy.frames; // keep the duration: frames follow from it
      form.setSpec(copy);
      frame = 0;
      slider.value = "0";
      specChanged("spec");
      $("#explorer").scrollIntoView({ behavior: "smooth", block: "start" });
      toast("Loaded into the editor: change what you like and render.");
    },
  });

  $("#settings").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!session.user) {
      pendingRender = true;
      openAuth("Sign in (or sign up) to render.");
      return;
    }
    await submitRender();
  });

  let pendingRender = false;

  async function submitRender() {
    const button = $("#render");
    button.disabled = true;
    try {
      const task = await postJson("/v1/animations", currentSpec());
      library.add(task);
      toast("Rendering started.");
      $("#library").scrollIntoView({ behavior: "smooth", block: "nearest" });
    } catch (problem) {
      if (!(problem instanceof ApiProblem)) throw problem;
      if (problem.status === 422 && problem.fields.length) {
        const unplaced = form.showProblems(problem.fields);
        if (unplaced.length) toast(unplaced.map((item) => item.message).join(" "), "error");
      } else {
        toast(problem.message, "error");
      }
    } finally {
      button.disabled = false;
    }
  }

  // -- account -------------------------------------------------------------------------
  const authDialog = $("#auth-dialog");
  const authForm = $("#auth-form");
  const authError = $("#auth-error");
  let authMode = "login";

  function setAuthMode(mode) {
    authMode = mode;
    $("#auth-title").textContent = mode === "login" ? "Sign in" : "Create an account";
    $("#auth-submit").textContent = mode === "login" ? "Sign in" : "Sign up";
    $("#auth-switch").textContent = mode === "login" ? "No account yet? Sign up" : "Have an account? Sign in";
    $("#auth-password").autocomplete = mode === "login" ? "current-password" : "new-password";
    authError.textContent = "";
  }

  function openAuth(message = "") {
    setAuthMode(authMode);
    $("#auth-message").textContent = message;
    authDialog.showModal();
    $("#auth-username").focus();
  }

  $("#auth-switch").addEventListener("click", () => setAuthMode(authMode === "login" ? "signup" : "login"));
  $("#auth-cancel").addEventListener("click", () => {
    pendingRender = false;
    authDialog.close();
  });
  authForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("#auth-username").value.trim();
    const password = $("#auth-password").value;
    authError.textContent = "";
    $("#auth-submit").disabled = true;
    try {
      if (authMode === "login") await session.logIn(username, password);
      else await session.signUp(username, password);
      authDialog.close();
      $("#auth-password").value = "";
      toast(`Signed in as ${username}.`);
      if (pendingRender) {
        pendingRender = false;
        await submitRender();
      }
    } catch (problem) {
      authError.textContent = problem instanceof ApiProblem ? problem.message : String(problem);
    } finally {
      $("#auth-submit").disabled = false;
    }
  });

  function drawAccount(user, message) {
    const box = $("#account");
    if (user) {
      box.replaceChildren(
        h("span", { class: "who" }, user.username),
        h("button", { type: "button", onclick: () => session.logOut() }, "Log out"),
        h("button", { type: "button", class: "danger", onclick: deleteAccount }, "Delete account"),
      );
      $("#library").hidden = false;
      library.load();
    } else {
      box.replaceChildren(
        h("button", { type: "button", class: "primary", onclick: () => openAuth() }, "Sign in"),
      );
      library.reset();
      $("#library").hidden = true;
    }
    if (message) toast(message, "error");
  }

  async function deleteAccount() {
    const name = session.user?.username;
    const confirmed = await confirmDialog(
      "Delete your account?",
      `The account ${name}, its animations and their videos are deleted for good. Running renders are cancelled.`,
      "Delete account",
    );
    if (!confirmed) return;
    try {
      await session.deleteAccount();
      toast("Account deleted.");
    } catch (problem) {
      toast(problem.message, "error");
    }
  }

  session.onChange(drawAccount);
  drawAccount(session.user);
  session.check();

  // -- start ---------------------------------------------------------------------------
  form.setSpec(STARTER);
  specChanged("spec");
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  const box = document.getElementById("fatal");
  box.hidden = false;
  box.textContent = `The studio could not start: ${error.message}`;
});
