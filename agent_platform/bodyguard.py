"""Pure ASGI guard for request bodies, before any parsing: size, media type, JSON shape.

A body past the limit is refused with 413 while it is still arriving (a lying or missing
Content-Length does not help). A body on a ``/v1`` route must be JSON (415 otherwise), and
JSON with a repeated key, or nested deeper than anything the API accepts, is refused with
422: Python's parser would silently keep the last duplicate, so that what was validated
and what a reader of the request sees could differ.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .authgate import UNAUTHENTICATED
from .problems import ProblemError

__all__ = ["BodyGuardMiddleware"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
MAX_DEPTH = 8


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # Not which key: it may be a secret put where a secret's name belongs.
            raise ProblemError(422, "validation_error", "the JSON body repeats a key in one object")
        seen[key] = value
    return seen


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max([level, *(_depth(v, level + 1) for v in value.values())])
    if isinstance(value, list):
        return max([level, *(_depth(v, level + 1) for v in value)])
    return level


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def check_json(body: bytes) -> None:
    try:
        parsed = json.loads(body, object_pairs_hook=_no_duplicates)
    except ProblemError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ProblemError(422, "validation_error", "the body is not valid JSON") from exc
    if _depth(parsed) > MAX_DEPTH:
        raise ProblemError(422, "validation_error", f"the JSON body nests deeper than {MAX_DEPTH}")


class BodyGuardMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _WITH_BODY
            or scope.get("state", {}).get(UNAUTHENTICATED)
        ):
            # An unauthenticated request to no route: its 404 or 405 needs no body.
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        try:
            body = await self._read(headers, receive)
            if body and scope["path"].startswith("/v1/"):
                if not _is_json(headers.get(b"content-type", b"").decode("latin-1")):
                    raise ProblemError(
                        415, "unsupported_media_type", "the body must be application/json"
                    )
                check_json(body)
        except ProblemError as refused:
            await refused.response(scope["path"])(scope, receive, send)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> ProblemError:
        return ProblemError(413, "payload_too_large", f"the body exceeds {self.max_bytes} bytes")

    async def _read(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ProblemError(400, "bad_request", "the client left before sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
