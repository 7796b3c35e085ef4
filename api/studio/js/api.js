// The studio's only door to the server: same-origin fetches, the bearer token in a header,
// refusals turned into plain words (and into field messages where the server names one).

let token = null;
let onUnauthorized = () => {};

export function setToken(value) {
  token = value;
}

export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

// A refusal of the server: its status, its reason in plain words, the fields it names.
export class ApiProblem extends Error {
  constructor(status, message, { fields = [], retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.fields = fields; // [{ path: "width" | "path.step" | "", message }]
    this.retryAfter = retryAfter;
  }
}

// FastAPI locates a refused value as ["body" | "query", "spec"?, field, ...]: the field's
// path in the spec is what follows.
export function fieldPath(loc) {
  const parts = [...(loc || [])].map(String);
  if (["body", "query", "path", "header"].includes(parts[0])) parts.shift();
  if (parts[0] === "spec") parts.shift();
  return parts.join(".");
}

function cleanMessage(message) {
  return String(message || "invalid").replace(/^Value error, /, "");
}

async function problemOf(response) {
  let detail = null;
  try {
    detail = (await response.json()).detail;
  } catch {
    detail = null;
  }
  const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  const retryAfter = Number.isFinite(retry) ? retry : null;
  const status = response.status;
  if (Array.isArray(detail)) {
    const fields = detail.map((item) => ({
      path: fieldPath(item.loc),
      message: cleanMessage(item.msg),
    }));
    const summary = fields.map((f) => (f.path ? `${f.path}: ${f.message}` : f.message)).join("; ");
    return new ApiProblem(status, summary, { fields, retryAfter });
  }
  const reason = typeof detail === "string" && detail ? detail : response.statusText;
  if (status === 429) {
    const wait = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again shortly.";
    return new ApiProblem(status, `Too many requests: ${reason}.${wait}`, { retryAfter });
  }
  if (status === 503) {
    return new ApiProblem(status, `The service is unavailable right now (${reason}). Try again shortly.`);
  }
  if (status >= 500) {
    return new ApiProblem(status, `The server failed (${status}). Try again shortly.`);
  }
  if (status === 422) {
    return new ApiProblem(status, reason, { fields: [{ path: "", message: reason }] });
  }
  return new ApiProblem(status, reason);
}

// fetch() with the token, JSON or form bodies; returns the Response when it is OK,
// throws an ApiProblem otherwise (and tells the session a 401 happened).
export async function request(method, path, { json, form, signal, headers = {} } = {}) {
  const init = { method, signal, headers: { ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiProblem(0, "Cannot reach the server. Check your connection and try again.");
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401 && token) onUnauthorized(problem);
    throw problem;
  }
  return response;
}

export async function getJson(path, options) {
  return (await request("GET", path, options)).json();
}

export async function postJson(path, json, options = {}) {
  return (await request("POST", path, { ...options, json })).json();
}

// Server-Sent Events read with fetch, so the token travels in a header, never in a URL.
// Calls onEvent({ event, data, id }) for each event; resolves when the server ends the
// stream; throws on a refusal or a dropped connection.
export async function readEvents(path, onEvent, signal) {
  const response = await request("GET", path, {
    signal,
    headers: { Accept: "text/event-stream" },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\n|\r/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) onEvent({ ...event, data: event.data.join("\n") });
        event = { event: "message", data: [], id: null };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (name === "event") event.event = text;
      else if (name === "data") event.data.push(text);
      else if (name === "id") event.id = text;
    }
  }
}
