"""How a Docker container's state becomes the contract's status: the one place it is decided.

| engine state | condition                                   | status       |
|--------------|---------------------------------------------|--------------|
| created      |                                             | pending      |
| running      |                                             | running      |
| restarting   |                                             | restarting   |
| paused       |                                             | stopped      |
| removing     |                                             | stopped      |
| exited       | OOM-killed (known from inspect)             | failed       |
| exited       | the engine reported an error                | failed       |
| exited       | exit code 0                                 | exited       |
| exited       | exit code 143 (SIGTERM, a stop's signal)    | stopped      |
| exited       | exit code 137 (SIGKILL) and a stop was asked| stopped      |
| exited       | exit code 137 and no stop was asked         | failed       |
| exited       | any other exit code                         | failed       |
| dead         |                                             | failed       |
| anything else|                                             | unknown      |

A stop sends the stop signal (SIGTERM) and, after the grace period, SIGKILL, so a stopped
container exits with 143 or 137. SIGTERM is a stop's own signal: an agent that dies of it
was asked to stop. A SIGKILL is a stop only when a stop was asked (a call, the TTL, or the
engine's own ``stop`` of the container: ``stop_asked``); a ``docker kill`` behind the
service's back is a failure (``killed``), not a stop. The view (``get``, ``list``) and the
watch's events both decide here, each telling what it knows of the stop.
"""

from __future__ import annotations

from ..models import AgentStatus, FailureReason

__all__ = ["SIGKILL_EXIT", "container_status", "failure_reason"]

SIGKILL_EXIT = 137
_SIGTERM_EXIT = 143


def container_status(
    state: str,
    exit_code: int | None,
    *,
    oom_killed: bool = False,
    error: str = "",
    stop_asked: bool = False,
) -> tuple[AgentStatus, str | None]:
    """The contract's status and a short reason, from the engine's view of a container."""
    if state == "created":
        return AgentStatus.PENDING, "created, not started yet"
    if state == "running":
        return AgentStatus.RUNNING, None
    if state == "restarting":
        return AgentStatus.RESTARTING, _exit_reason("restarting after exiting", exit_code)
    if state in ("paused", "removing"):
        return AgentStatus.STOPPED, state
    if state == "dead":
        return AgentStatus.FAILED, "the engine could not stop or remove the container"
    if state != "exited":
        return AgentStatus.UNKNOWN, f"unrecognised engine state {state!r}"
    if oom_killed:
        return AgentStatus.FAILED, "killed: out of memory (the memory limit was reached)"
    if error:
        return AgentStatus.FAILED, error
    if exit_code == 0:
        return AgentStatus.EXITED, "exited with code 0"
    if exit_code == _SIGTERM_EXIT or (exit_code == SIGKILL_EXIT and stop_asked):
        return AgentStatus.STOPPED, _exit_reason("stopped", exit_code)
    if exit_code == SIGKILL_EXIT:
        return AgentStatus.FAILED, f"killed outside the API (exit code {exit_code})"
    return AgentStatus.FAILED, _exit_reason("exited", exit_code)


def failure_reason(exit_code: int | None, *, oom_killed: bool, error: str) -> FailureReason:
    """Why an exited container that reads as failed failed."""
    if oom_killed:
        return FailureReason.OOM_KILLED
    if error:
        return FailureReason.ERROR
    if exit_code == SIGKILL_EXIT:
        return FailureReason.KILLED
    return FailureReason.EXIT_CODE


def _exit_reason(prefix: str, exit_code: int | None) -> str:
    return prefix if exit_code is None else f"{prefix} with code {exit_code}"
