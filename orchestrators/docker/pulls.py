"""Image pulls under a deadline, on their own bounded pool, a few per owner at a time.

The SDK's ``pull`` has no timeout at all: a registry that accepts the connection and never
answers held an engine thread for ever. Here a pull is one streamed ``POST /images/create``
on a pool of its own (so pulls never take the threads other calls need), it may last
``timeout`` seconds in all (the connection is closed at the deadline, which also makes the
engine give the pull up), and one owner may run only ``per_owner`` pulls at once (the next
is refused with ``TooManyCalls``). A registry at a loopback, private or link-local address
is refused before any connection unless the operator allows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from docker import APIClient, auth
from docker.utils import parse_repository_tag

from ..errors import ImageNotFound, PolicyViolation, TooManyCalls
from .registry import private_registry_address

__all__ = ["Pulls"]

_CONNECT_TIMEOUT = 10.0


@dataclass(slots=True)
class _Pull:
    """One pull in flight: the response to close when its deadline passes."""

    deadline: float
    response: requests.Response | None = None
    abandoned: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def adopt(self, response: requests.Response) -> None:
        with self.lock:
            self.response = response
            if self.abandoned:
                response.close()

    def abandon(self) -> None:
        with self.lock:
            self.abandoned = True
            if self.response is not None:
                with contextlib.suppress(Exception):
                    self.response.close()


class Pulls:
    """Pulls for one backend; ``client`` gives the engine's API client."""

    def __init__(
        self,
        client: Callable[[], APIClient],
        *,
        timeout: float,
        threads: int,
        per_owner: int,
        allow_private: bool,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._per_owner = per_owner
        self._allow_private = allow_private
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="pull")
        self._owners: dict[str, int] = {}

    async def pull(self, image: str, *, owner: str) -> None:
        """Pull ``image`` for ``owner``; ``ImageNotFound`` if it fails or runs out of time,
        ``PolicyViolation`` for a private registry, ``TooManyCalls`` past the owner's cap."""
        if self._owners.get(owner, 0) >= self._per_owner:
            raise TooManyCalls(
                f"owner {owner!r} already has {self._per_owner} image pull(s) in flight"
            )
        self._owners[owner] = self._owners.get(owner, 0) + 1
        try:
            await self._pull(image)
        finally:
            self._owners[owner] -= 1
            if not self._owners[owner]:
                del self._owners[owner]

    async def _pull(self, image: str) -> None:
        loop = asyncio.get_running_loop()
        pull = _Pull(deadline=time.monotonic() + self._timeout)
        future = loop.run_in_executor(self._executor, self._run, image, pull)
        try:
            await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError:
            pull.abandon()
            future.cancel()  # not started yet: it never will
            raise ImageNotFound(
                f"image {image!r} is not present on the engine and its pull did not finish "
                f"within {self._timeout:g} s"
            ) from None
        except asyncio.CancelledError:
            pull.abandon()
            future.cancel()
            raise

    def _run(self, image: str, pull: _Pull) -> None:
        if not self._allow_private:
            address = private_registry_address(image)
            if address is not None:
                raise PolicyViolation(
                    f"image {image!r} comes from a registry at a private or loopback address "
                    f"({address}): this server does not pull from such registries"
                )
        api = self._client()
        repository, tag = parse_repository_tag(image)
        params = {"fromImage": repository, "tag": tag or "latest"}
        headers = {}
        registry, _ = auth.resolve_repository_name(repository)
        header = auth.get_config_header(api, registry)
        if header:
            headers["X-Registry-Auth"] = header
        remaining = max(0.1, pull.deadline - time.monotonic())
        try:
            response = api.post(
                f"{api.base_url}/v{api.api_version}/images/create",
                params=params,
                headers=headers,
                stream=True,
                timeout=(min(_CONNECT_TIMEOUT, remaining), remaining),
            )
            pull.adopt(response)
            with response:
                if response.status_code >= 400:
                    raise ImageNotFound(_refused(image, response))
                for line in response.iter_lines():
                    if pull.abandoned:
                        return
                    _raise_on_error(image, line)
        except requests.exceptions.RequestException as exc:
            if pull.abandoned:
                return
            raise ImageNotFound(
                f"image {image!r} is not present on the engine and could not be pulled "
                f"({type(exc).__name__})"
            ) from exc

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _refused(image: str, response: requests.Response) -> str:
    try:
        message = str(response.json().get("message", ""))[:300]
    except ValueError:
        message = ""
    return f"image {image!r} is not present on the engine and could not be pulled: {message}"


def _raise_on_error(image: str, line: bytes) -> None:
    if not line:
        return
    try:
        event = json.loads(line)
    except ValueError:
        return
    if isinstance(event, dict) and event.get("error"):
        raise ImageNotFound(
            f"image {image!r} is not present on the engine and could not be pulled: "
            f"{str(event['error'])[:300]}"
        )
