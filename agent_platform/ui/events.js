// What changed lately: the events this page received since sign-in, newest first.

import { el } from "./dom.js";

const KEPT = 500;
const seen = []; // oldest first

export function remember(event) {
  if (event.type === "reset") return;
  seen.push(event);
  if (seen.length > KEPT) seen.shift();
}

// What one key saw is not shown to the next key signed in in this tab.
export function forget() {
  seen.length = 0;
}

function line(event, withName) {
  const who = withName && event.agent ? `${event.agent.name} ` : "";
  const why = event.detail ? ` (${event.detail})` : "";
  return el("li", {}, `${event.time.slice(11, 19)} ${who}${event.type}: ${event.status || ""}${why}`);
}

// Fills list with the latest events (of one agent when agentId is given), newest first.
export function showRecent(list, { agentId = null, limit = KEPT } = {}) {
  const chosen = seen.filter((event) => agentId === null || event.agent?.id === agentId).slice(-limit).reverse();
  const empty = el("li", { className: "muted" }, "none since you signed in");
  list.replaceChildren(...(chosen.length ? chosen.map((event) => line(event, agentId === null)) : [empty]));
}
