// The dashboard's entry point: sign-in, the two views (fleet, one agent), live updates.

import { agentChanged, hideAgent, refreshAgent, showAgent, tickAgent } from "./agent.js";
import { signIn, signOut, whoami } from "./api.js";
import { $ } from "./dom.js";
import { forget, remember, showRecent } from "./events.js";
import { watchFleet } from "./feed.js";
import { setAgents, setupFleet, tick } from "./fleet.js";

const RECENT = 8; // changes listed under the fleet
let me = null;
let feed = null;
let clock = null;

function route() {
  if (!me) return;
  const match = /^#\/agents\/([a-z0-9-]+)$/.exec(window.location.hash);
  $("fleet").hidden = Boolean(match);
  $("agent").hidden = !match;
  if (match) {
    showAgent(match[1], { canWrite: me.role !== "viewer", onChange: () => Promise.all([feed?.refresh(), refreshAgent()]) });
  } else {
    hideAgent();
  }
}

function leave(message) {
  me = null;
  signOut();
  feed?.stop();
  feed = null;
  clearInterval(clock);
  hideAgent();
  forget();
  $("fleet").hidden = true;
  $("agent").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("key").focus();
}

function failed(error) {
  if (error.status === 401) leave("The key is no longer accepted: sign in again.");
  else $("fleet-state").textContent = `Cannot reach agent-api: ${error.message}. Retrying…`;
}

async function enter(event) {
  event.preventDefault();
  const input = $("key");
  signIn(input.value);
  input.value = "";
  try {
    me = await whoami();
  } catch (error) {
    leave(error.status === 401 ? "That key is not valid." : `Sign-in failed: ${error.message}`);
    return;
  }
  $("sign-in").hidden = true;
  $("sign-in-error").textContent = "";
  $("who").textContent = `${me.key_name} · ${me.role} · owner ${me.owner}`;
  $("who").hidden = false;
  $("sign-out").hidden = false;
  setupFleet(me.role === "admin");
  showRecent($("recent"), { limit: RECENT });
  feed = watchFleet({
    onAgents: (agents) => {
      if ($("fleet-state").textContent.startsWith("Cannot")) $("fleet-state").textContent = "";
      setAgents(agents);
    },
    onEvent: (event) => {
      remember(event);
      showRecent($("recent"), { limit: RECENT });
      agentChanged(event);
    },
    onError: failed,
    onLive: (live) => {
      $("feed-mode").textContent = live ? "Live." : "Updated every 2 s.";
    },
  });
  clock = setInterval(() => {
    tick();
    tickAgent();
  }, 1000);
  route();
}

$("sign-in").addEventListener("submit", enter);
$("sign-out").addEventListener("click", () => leave(""));
window.addEventListener("hashchange", route);
