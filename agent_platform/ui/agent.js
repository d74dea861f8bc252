// One agent: its details, what happened to it lately, its logs (with follow), and the
// lifecycle buttons its key's role allows (none for a viewer: the server refuses anyway).

import { call, getAgent, streamText } from "./api.js";
import { $, append, clear, el } from "./dom.js";
import { showRecent } from "./events.js";
import { lightBadge } from "./fleet.js";
import { ttlLeft, upOrExit } from "./status.js";

const LOG_TAIL = 500;
let current = null; // { id, agent, canWrite, logs: AbortController | null, onChange }

function detailRows(agent) {
  const rows = [
    ["Id", agent.id],
    ["Owner", agent.owner],
    ["Image", agent.image],
    ["Status", agent.status],
    ["Why", agent.detail || ""],
    ["Up / exit", upOrExit(agent)],
    ["Created", agent.created_at],
    ["Started", agent.started_at || ""],
    ["TTL", agent.expires_at ? `${ttlLeft(agent)} (until ${agent.expires_at})` : "none"],
    ["Command", agent.command ? agent.command.join(" ") : "(image default)"],
    ["Restart policy", agent.restart_policy],
    ["Labels", Object.entries(agent.labels).map(([k, v]) => `${k}=${v}`).join(", ")],
    ["Env", Object.keys(agent.env).join(", ")],
    ["Secrets", agent.secret_names.join(", ")],
    ["Network", agent.address ? `${agent.address.host} on ${agent.address.network}` : agent.network],
  ];
  return rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value || "—")]);
}

function say(text) {
  $("action-state").textContent = text;
}

async function act(label, method, path, body) {
  say(`${label}…`);
  try {
    await call(method, path, body);
    say(`${label}: done`);
  } catch (error) {
    say(`${label} refused: ${error.message}`);
  }
  await current?.onChange();
}

function button(text, onclick, className = "") {
  return el("button", { type: "button", className, onclick }, text);
}

function renderActions(agent) {
  const box = $("actions");
  clear(box);
  if (!current.canWrite) return;
  const base = `/v1/agents/${agent.id}`;
  append(box, [
    button("Start", () => act("Start", "POST", `${base}/start`)),
    button("Stop", () => act("Stop", "POST", `${base}/stop`)),
    button("Restart", () => act("Restart", "POST", `${base}/restart`)),
  ]);
  if (agent.expires_at) {
    const seconds = el("input", { type: "number", min: "1", value: "3600", "aria-label": "TTL seconds" });
    append(box, [
      el("span", {}, seconds, button("Renew TTL", () => act("Renew TTL", "POST", `${base}/ttl`, { ttl_seconds: Number(seconds.value) }))),
    ]);
  }
  append(box, [button("Delete…", () => confirmDelete(agent), "danger")]);
}

function confirmDelete(agent) {
  const box = $("actions");
  clear(box);
  const yes = button(`Delete ${agent.name}`, async () => {
    await act("Delete", "DELETE", `/v1/agents/${agent.id}`);
    window.location.hash = "#/";
  }, "danger");
  append(box, [
    el("span", { role: "alert" }, `Delete ${agent.name} and its workspace? This cannot be undone.`),
    yes,
    button("Cancel", () => renderActions(agent)),
  ]);
  yes.focus();
}

function render(agent) {
  current.agent = agent;
  $("agent-title").textContent = agent.name;
  const badge = $("agent-light");
  clear(badge);
  append(badge, [lightBadge(agent)]);
  const details = $("details");
  clear(details);
  append(details, detailRows(agent));
  if (!$("actions").querySelector("[role=alert]")) renderActions(agent);
}

const renderEvents = () => showRecent($("events"), { agentId: current.id });

// An event came: shown, and the agent read again, when it is about the agent on show.
export function agentChanged(event) {
  if (current && event.agent?.id === current.id) {
    renderEvents();
    refreshAgent();
  }
}

function stopLogs() {
  current?.logs?.abort();
  if (current) current.logs = null;
}

async function loadLogs(follow) {
  stopLogs();
  const controller = new AbortController();
  current.logs = controller;
  const pre = $("logs");
  pre.textContent = "";
  const query = new URLSearchParams({ tail: String(LOG_TAIL), follow: String(follow) });
  try {
    await streamText(`/v1/agents/${current.id}/logs?${query}`, (text) => {
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(document.createTextNode(text));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }, controller.signal);
    if (follow && current?.logs === controller) pre.append(document.createTextNode("\n[log stream ended]\n"));
  } catch (error) {
    if (error.name !== "AbortError") pre.append(document.createTextNode(`\n[logs unavailable: ${error.message}]\n`));
  }
}

export async function refreshAgent() {
  if (!current) return;
  try {
    render(await getAgent(current.id));
  } catch (error) {
    say(error.status === 404 ? "This agent is gone." : `Could not read the agent: ${error.message}`);
  }
}

export async function showAgent(id, { canWrite, onChange }) {
  hideAgent();
  current = { id, agent: null, canWrite, logs: null, onChange };
  $("agent-title").textContent = "";
  clear($("details"));
  clear($("actions"));
  renderEvents();
  say("");
  const follow = $("follow");
  follow.checked = false;
  follow.onchange = () => loadLogs(follow.checked);
  await refreshAgent();
  loadLogs(false);
}

export function hideAgent() {
  stopLogs();
  current = null;
}

export function tickAgent() {
  if (current?.agent) {
    const details = $("details").querySelectorAll("dd");
    details[5].textContent = upOrExit(current.agent) || "—";
  }
}
