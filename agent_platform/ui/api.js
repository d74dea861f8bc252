// The one way the page talks to agent-api: the key in the Authorization header, never in a
// URL, a cookie or storage; it lives in this module's memory until sign-out or a reload.

let key = null;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
  }
}

export function signIn(value) {
  key = value;
}

export function signOut() {
  key = null;
}

async function send(method, path, body, signal, extra = {}) {
  const headers = { ...extra, Authorization: `Bearer ${key}` };
  const init = { method, headers, signal, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    throw new ApiError(response.status, problem);
  }
  return response;
}

export async function call(method, path, body) {
  const response = await send(method, path, body);
  return response.status === 204 ? null : response.json();
}

export const whoami = () => call("GET", "/v1/whoami");
export const getAgent = (id) => call("GET", `/v1/agents/${encodeURIComponent(id)}`);

export async function listAgents() {
  const agents = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: "1000" });
    if (cursor) query.set("cursor", cursor);
    const page = await call("GET", `/v1/agents?${query}`);
    agents.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return agents;
}

// Streams a text response (logs with follow) chunk by chunk until it ends or is aborted.
export async function streamText(path, onText, signal) {
  const response = await send("GET", path, undefined, signal);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onText(value);
  }
}

// Reads a Server-Sent Events stream with fetch (EventSource cannot send the key in a
// header) and calls onEvent(data, id) for each event, until it ends or is aborted.
export async function readEvents(path, { lastEventId, signal, onOpen, onEvent }) {
  const extra = lastEventId ? { "Last-Event-ID": lastEventId } : {};
  const response = await send("GET", path, undefined, signal, extra);
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (data.length) onEvent(JSON.parse(data.join("\n")), id);
        data = [];
        continue;
      }
      const colon = line.indexOf(":");
      if (colon === 0) continue; // a comment: the server's keep-alive
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") data.push(text);
      else if (field === "id") id = text;
    }
  }
}
