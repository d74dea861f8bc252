"""How a Docker container's state becomes the contract's status: the one place it is decided.

| engine state | condition                         | status       |
|--------------|-----------------------------------|--------------|
| created      |                                   | pending      |
| running      |                                   | running      |
| restarting   |                                   | restarting   |
| paused       |                                   | stopped      |
| removing     |                                   | stopped      |
| exited       | OOM-killed (known from inspect)   | failed       |
| exited       | the engine reported an error      | failed       |
| exited       | exit code 0                       | exited       |
| exited       | exit code 137 or 143 (a stop)     | stopped      |
| exited       | any other exit code               | failed       |
| dead         |                                   | failed       |
| anything else|                                   | unknown      |

A stop sends SIGTERM and, after the grace period, SIGKILL, so a stopped container exits with
143 or 137. Docker keeps no "stopped on request" flag, so an agent that dies of SIGKILL on
its own also reads as stopped; an out-of-memory kill is told apart only where the
container was inspected (``get`` and every lifecycle route), not in a list.
"""

from __future__ import annotations

from ..models import AgentStatus

__all__ = ["container_status"]

_STOP_CODES = frozenset({137, 143})


def container_status(
    state: str, exit_code: int | None, *, oom_killed: bool = False, error: str = ""
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
    if exit_code in _STOP_CODES:
        return AgentStatus.STOPPED, _exit_reason("stopped", exit_code)
    return AgentStatus.FAILED, _exit_reason("exited", exit_code)


def _exit_reason(prefix: str, exit_code: int | None) -> str:
    return prefix if exit_code is None else f"{prefix} with code {exit_code}"
