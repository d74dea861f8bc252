// Where the page learns that agents changed: the event stream (GET /v1/events), read with
// fetch and resumed with Last-Event-ID after a drop; where the service has no event stream
// (404), the fleet listed every few seconds, what changed turned into events of the same
// shape (type, time, agent {id, name, owner}, status, detail, exit_code).

import { getAgent, listAgents, readEvents } from "./api.js";

const INTERVAL_MS = 2000;
const RETRY_MS = [1000, 2000, 5000, 10000];
const POLLS_BEFORE_RETRY = 15;

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
  if (status === "restarting") return "restarted";
  return status;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

// Calls onAgents(list) with the whole fleet and onEvent(event) for each change, until stop().
export function watchFleet({ onAgents, onEvent, onError, onLive }) {
  const controller = new AbortController();
  const { signal } = controller;
  let known = null; // id -> agent
  let live = false;
  let queue = Promise.resolve(); // events applied one at a time, in their order
  const enqueue = (job) => {
    queue = queue.then(job).catch(onError);
  };

  const publish = () => onAgents([...known.values()]);

  async function relist(announce) {
    const agents = await listAgents();
    if (signal.aborted) return;
    const next = new Map(agents.map((agent) => [agent.id, agent]));
    if (known !== null && announce) {
      for (const agent of agents) {
        const before = known.get(agent.id);
        if (!before) onEvent(event("created", agent));
        else if (before.status !== agent.status) onEvent(event(changeType(agent.status), agent));
      }
      for (const [id, agent] of known) if (!next.has(id)) onEvent(event("deleted", agent));
    }
    for (const [id, agent] of next) if (known?.get(id)?.health) agent.health = known.get(id).health;
    known = next;
    publish();
  }

  async function apply(change) {
    if (known === null) return;
    if (change.type === "reset" || !change.agent) {
      await relist(false);
    } else if (change.type === "deleted") {
      known.delete(change.agent.id);
    } else {
      const before = known.get(change.agent.id);
      if (before) {
        const after = { ...before, status: change.status ?? before.status, detail: change.detail ?? null };
        if ("exit_code" in change) after.exit_code = change.exit_code;
        if (change.type === "health") after.health = change.health;
        known.set(after.id, after);
      } else {
        try {
          const agent = await getAgent(change.agent.id);
          known.set(agent.id, agent);
        } catch (error) {
          if (error.status !== 404) throw error;
        }
      }
    }
    publish();
    onEvent(change);
  }

  async function stream() {
    let lastEventId = null;
    let failures = 0;
    while (!signal.aborted) {
      try {
        await readEvents("/v1/events", {
          lastEventId,
          signal,
          // Listed once the stream is open, so that no change falls between the two.
          onOpen: () => {
            live = true;
            onLive(true);
            if (lastEventId === null) enqueue(() => relist(false));
          },
          onEvent: (change, id) => {
            lastEventId = id ?? lastEventId;
            failures = 0;
            enqueue(() => apply(change));
          },
        });
      } catch (error) {
        if (signal.aborted) return;
        live = false;
        // No event stream here (404), or none now (503: the engine's watch is down; 429:
        // this key or owner has too many streams open): listing, then the stream again.
        if (error.status === 404) return poll(Infinity);
        if (error.status === 503 || error.status === 429) {
          await poll(POLLS_BEFORE_RETRY);
          lastEventId = null;
          continue;
        }
        onLive(false);
        onError(error);
        if (error.status === 401) return;
        failures += 1;
      }
      await sleep(RETRY_MS[Math.min(failures, RETRY_MS.length - 1)], signal);
    }
  }

  async function poll(times) {
    onLive(false);
    for (let n = 0; n < times && !signal.aborted; n += 1) {
      try {
        await relist(true);
      } catch (error) {
        if (signal.aborted) return;
        onError(error);
        if (error.status === 401) return;
      }
      await sleep(INTERVAL_MS, signal);
    }
  }

  stream();
  return {
    // Right after an action: the list now, without waiting for the next event or poll.
    refresh: () => relist(!live).catch(onError),
    stop: () => controller.abort(),
  };
}
