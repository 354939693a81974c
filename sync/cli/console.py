"""The `console` command of the CLI: serve the browser console, or make, list and revoke its admin tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from sync.cli.shared import admin_errors as _admin_errors
from sync.cli.shared import command_settings as _settings
from sync.cli.shared import out, say


@_admin_errors
def console(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    new_token: Annotated[
        bool, typer.Option("--new-token", help="Make a sign-in token, print it once, and exit (only its hash is kept).")
    ] = False,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="With --new-token: the token may look, not change.")
    ] = False,
    label: Annotated[
        str | None, typer.Option(help="With --new-token: whose token (recorded as the author of changes).")
    ] = None,
    tokens: Annotated[bool, typer.Option("--tokens", help="List the tokens (never their secrets) and exit.")] = False,
    revoke_token: Annotated[
        int | None, typer.Option("--revoke-token", help="Revoke token N (see --tokens) and exit.")
    ] = None,
) -> None:
    """The admin console in the browser: the commands' views and actions, with a preview before every change."""
    from sync.admin.revisions import default_author
    from sync.store import console as console_store
    from sync.store.db import make_engine, upgrade

    settings = _settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    now = datetime.now(UTC)
    if new_token:
        who = label or default_author()
        with engine.begin() as conn:
            secret, token = console_store.new_token(
                conn, label=who, role="viewer" if read_only else "admin", by=default_author(), now=now
            )
        say(f"token {token.id} for {token.label} ({token.role}); shown this once, only its hash is stored:")
        typer.echo(secret)
        return
    if revoke_token is not None:
        with engine.begin() as conn:
            if not console_store.revoke_token(conn, revoke_token, now):
                from connectors.errors import ConfigError

                raise ConfigError(f"there is no live console token {revoke_token}: see `hourbridge console --tokens`")
        say(f"token {revoke_token} revoked; sessions it opened end when they expire")
        return
    if tokens:
        table = Table(title="Console tokens")
        for column in ("token", "label", "role", "created", "by", "last used", "revoked"):
            table.add_column(column)
        with engine.connect() as conn:
            for t in console_store.list_tokens(conn):
                table.add_row(
                    str(t.id),
                    t.label,
                    t.role,
                    f"{t.created_at:%Y-%m-%d %H:%M}",
                    t.created_by,
                    f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "",
                    f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
                )
        out.print(table)
        return
    import uvicorn

    from sync.console.app import create_app

    say(f"hourbridge console on http://{host}:{port}/ (sign in with a token from `hourbridge console --new-token`)")
    uvicorn.run(create_app(settings, engine), host=host, port=port, log_level="warning", proxy_headers=False)


def register(app: typer.Typer) -> None:
    """Add `console` to the `hourbridge` app."""
    app.command()(console)
