"""``agent-platform``: run the service, or make a key for the keys file."""

from __future__ import annotations

import json
import secrets
import sys
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from .auth import Role, hash_key
from .connguard import guarded_protocol
from .keyrules import weakness
from .logsetup import configure_logging
from .settings import Settings

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # Only where and what: the input may be a key, and must not be printed.
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            typer.echo(f"configuration error: {where}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: AGENT_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: AGENT_API_PORT")] = None,
) -> None:
    """Run agent-api until SIGINT/SIGTERM."""
    settings = _load_settings()
    configure_logging(settings.log_level, as_json=settings.log_json)
    from .app import create_app

    try:
        application = create_app(settings)
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=settings.keep_alive,
        loop="uvloop",
        http=guarded_protocol(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections=settings.max_connections,
            retry_after=settings.retry_after,
            refused=application.state.agent_api.metrics.refused,
        ),
    )


@app.command("create-key")
def create_key(
    name: Annotated[str, typer.Option(help="a label for the key, shown in logs")],
    owner: Annotated[str, typer.Option(help="whose agents the key manages")],
    role: Annotated[Role, typer.Option(help="admin, operator or viewer")] = Role.OPERATOR,
    stdin: Annotated[
        bool,
        typer.Option(
            "--stdin",
            help="hash a key read from standard input instead of making one; a weak or "
            "placeholder key is refused",
        ),
    ] = False,
) -> None:
    """Print a new key once, and the entry to add to the keys file."""
    if stdin:
        key = sys.stdin.readline().rstrip("\r\n")
        reason = weakness(key)
        if reason is not None:
            typer.echo(f"configuration error: key: {reason}", err=True)
            raise typer.Exit(2)
    else:
        key = secrets.token_urlsafe(32)
    entry = {"name": name, "owner": owner, "role": role.value, "sha256": hash_key(key)}
    if not stdin:
        typer.echo(f"key (shown once, store it now): {key}")
    typer.echo("keys file entry:")
    typer.echo(json.dumps(entry))
    sys.stdout.flush()
