// The fleet table: a traffic light per agent, counts per status, filters.

import { $, append, clear, el } from "./dom.js";
import { light, STATUSES, ttlLeft, upOrExit, word } from "./status.js";

let agents = [];
const filters = { status: "", label: "", owner: "" };

function matches(agent) {
  if (filters.status && agent.status !== filters.status) return false;
  if (filters.owner && agent.owner !== filters.owner) return false;
  if (filters.label) {
    const [key, value] = filters.label.split("=", 2).map((part) => part.trim());
    if (!(key in agent.labels)) return false;
    if (value !== undefined && value !== "" && agent.labels[key] !== value) return false;
  }
  return true;
}

export function lightBadge(agent) {
  return el("span", { className: `light ${light(agent)}`, dataset: { light: light(agent) } }, word(agent));
}

function row(agent) {
  const cell = (label, ...content) => el("td", { dataset: { label } }, ...content);
  return el(
    "tr",
    { dataset: { id: agent.id, name: agent.name } },
    cell("Status", lightBadge(agent)),
    cell("Name", el("a", { href: `#/agents/${agent.id}` }, agent.name)),
    cell("Owner", agent.owner),
    cell("Image", agent.image),
    cell("Up / exit", el("span", { className: "up" }, upOrExit(agent))),
    cell("TTL", el("span", { className: "ttl" }, ttlLeft(agent))),
    cell(
      "Labels",
      Object.entries(agent.labels).map(([key, value]) => el("span", { className: "label" }, `${key}=${value}`)),
    ),
  );
}

function renderCounts(visible) {
  const counts = {};
  for (const agent of visible) counts[agent.status] = (counts[agent.status] || 0) + 1;
  const list = $("counts");
  clear(list);
  append(list, [el("li", { dataset: { status: "all" } }, `${visible.length} agents`)]);
  for (const status of STATUSES) {
    if (!counts[status]) continue;
    const probe = { status, detail: "" };
    append(list, [
      el("li", { dataset: { status } }, el("span", { className: `light ${light(probe)}` }, `${status} ${counts[status]}`)),
    ]);
  }
}

function renderOwners() {
  const select = $("filter-owner");
  const owners = [...new Set(agents.map((agent) => agent.owner))].sort();
  const shown = [...select.options].slice(1).map((option) => option.value);
  if (owners.join() === shown.join()) return;
  while (select.options.length > 1) select.remove(1);
  for (const owner of owners) select.add(el("option", { value: owner }, owner));
  select.value = owners.includes(filters.owner) ? filters.owner : "";
}

export function render() {
  const byOwner = filters.owner ? agents.filter((agent) => agent.owner === filters.owner) : agents;
  renderCounts(byOwner);
  renderOwners();
  const body = $("agents").tBodies[0];
  const sorted = agents.filter(matches).sort((a, b) => a.owner.localeCompare(b.owner) || a.name.localeCompare(b.name));
  const focused = document.activeElement?.closest?.("tr")?.dataset.id;
  body.replaceChildren(...sorted.map(row));
  if (focused) body.querySelector(`tr[data-id="${CSS.escape(focused)}"] a`)?.focus();
  $("fleet-state").textContent = sorted.length ? "" : "No agent matches.";
}

// Only the clocks: keeps rows (and the keyboard focus in them) in place.
export function tick() {
  const byId = new Map(agents.map((agent) => [agent.id, agent]));
  for (const tr of $("agents").tBodies[0].rows) {
    const agent = byId.get(tr.dataset.id);
    if (!agent) continue;
    tr.querySelector(".up").textContent = upOrExit(agent);
    tr.querySelector(".ttl").textContent = ttlLeft(agent);
  }
}

export function setAgents(list) {
  agents = list;
  render();
}

export function setupFleet(isAdmin) {
  const status = $("filter-status");
  if (status.options.length === 1) for (const s of STATUSES) status.add(el("option", { value: s }, s));
  $("filter-owner-label").hidden = !isAdmin;
  status.onchange = () => {
    filters.status = status.value;
    render();
  };
  $("filter-label").oninput = (e) => {
    filters.label = e.target.value;
    render();
  };
  $("filter-owner").onchange = (e) => {
    filters.owner = e.target.value;
    render();
  };
}
