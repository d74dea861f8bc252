// Where the page learns that agents changed: the one module to swap for the event stream.
// For now it lists the fleet every few seconds and turns what changed into events shaped
// like those of /v1/events (type, time, agent {id, name, owner}, status, detail, exit_code).

import { listAgents } from "./api.js";

const INTERVAL_MS = 2000;

function event(type, agent) {
  return {
    type,
    time: new Date().toISOString(),
    agent: { id: agent.id, name: agent.name, owner: agent.owner },
    status: agent.status,
    detail: agent.detail,
    exit_code: agent.exit_code ?? null,
  };
}

function changeType(status) {
  if (status === "running") return "started";
  if (status === "stopped") return "stopped";
  if (status === "failed") return "failed";
  if (status === "exited") return "exited";
  if (status === "restarting") return "restarted";
  return status;
}

// Calls onAgents(list) with the whole fleet and onEvent(event) for each change, until stop().
export function watchFleet({ onAgents, onEvent, onError }) {
  let known = null;
  let timer = null;
  let stopped = false;

  async function poll() {
    clearTimeout(timer);
    try {
      const agents = await listAgents();
      if (stopped) return;
      const next = new Map(agents.map((agent) => [agent.id, agent]));
      if (known !== null) {
        for (const agent of agents) {
          const before = known.get(agent.id);
          if (!before) onEvent(event("created", agent));
          else if (before.status !== agent.status) onEvent(event(changeType(agent.status), agent));
        }
        for (const [id, agent] of known) if (!next.has(id)) onEvent(event("deleted", agent));
      }
      known = next;
      onAgents(agents);
    } catch (error) {
      if (stopped) return;
      onError(error);
    }
    if (!stopped) timer = setTimeout(poll, INTERVAL_MS);
  }

  poll();
  return {
    refresh: poll,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
