// The traffic light of an agent: a colour and, always, a word (never colour alone).

const LIGHTS = {
  running: "green",
  healthy: "green",
  pending: "yellow",
  starting: "yellow",
  restarting: "yellow",
  unhealthy: "yellow",
  failed: "red",
  stopped: "grey",
  unknown: "grey",
};

export const STATUSES = ["running", "pending", "restarting", "failed", "exited", "stopped", "unknown"];

export function exitCode(agent) {
  if (agent.exit_code !== undefined) return agent.exit_code;
  const match = /with code (\d+)/.exec(agent.detail || "");
  return match ? Number(match[1]) : null;
}

// The word beside the light: the status, or the healthcheck's verdict on a running agent.
export function word(agent) {
  if (agent.status === "running" && agent.health && agent.health !== "healthy") return agent.health;
  return agent.status;
}

export function light(agent) {
  if (agent.status === "running" && agent.health) return LIGHTS[agent.health] || "green";
  if (agent.status === "exited") {
    const code = exitCode(agent);
    return code !== null && code !== 0 ? "red" : "grey";
  }
  return LIGHTS[agent.status] || "grey";
}

export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const since = (iso) => (Date.now() - Date.parse(iso)) / 1000;

// "up 5m" for a running agent (counted from the start of its current run), its exit code
// otherwise.
export function upOrExit(agent) {
  if (agent.status === "running" && agent.started_at) {
    return `up ${duration(since(agent.started_at))}`;
  }
  if (agent.status === "running") return "up";
  const code = exitCode(agent);
  return code === null ? "" : `exit ${code}`;
}

export function ttlLeft(agent) {
  if (!agent.expires_at) return "";
  const left = -since(agent.expires_at);
  return left > 0 ? duration(left) : "expired";
}
