"""``/ui``: the fleet dashboard's static files, shipped in the package (no CDN, no build).

Only the files found in ``agent_platform/ui/`` at import are served, each by its exact name,
so no path from a request ever reaches the file system. Every answer carries a strict
Content-Security-Policy: scripts and styles from this origin only (no inline code), no
frames, no plugins, requests to this origin only; a name, label or log line that an agent
chose can therefore never run as script even if it were inserted as markup (the page
inserts text only).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Path, Response

from ..problems import ProblemError

__all__ = ["CONTENT_SECURITY_POLICY", "UI_HEADERS", "router"]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
UI_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _load() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("agent_platform") / "ui"
    found: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return found


_ASSETS = _load()

router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)


def _serve(name: str) -> Response:
    asset = _ASSETS.get(name)
    if asset is None:
        raise ProblemError(404, "not_found", "the dashboard has no such file")
    content, media_type = asset
    return Response(content, media_type=media_type, headers=UI_HEADERS)


@router.get("")
@router.get("/")
async def index() -> Response:
    return _serve("index.html")


@router.get("/{name}")
async def asset(name: str = Path(max_length=64)) -> Response:
    return _serve(name)
