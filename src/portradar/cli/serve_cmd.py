"""``portradar serve``: the dashboard and HTTP API, and its tokens and users.

* ``portradar serve [--host 127.0.0.1] [--port 8080] [--read-only]``
* ``portradar serve token add NAME --role read|admin`` (prints the token once),
  ``token list``, ``token revoke NAME``
* ``portradar serve user add NAME --role read|admin`` (asks for the password),
  ``user list``, ``user remove NAME``

Bound beyond loopback the server needs a token or a user and refuses to start
without one (see :mod:`portradar.web.auth` and docs/web.md).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from portradar.cli.options import err, friendly, open_store, output_format, output_options

#: 8080: the usual unprivileged HTTP alternative port (IANA http-alt).
DEFAULT_PORT = 8080


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; beyond loopback authentication is required.")
@click.option("--port", "port_", default=DEFAULT_PORT, show_default=True,
              type=click.IntRange(1, 65535))
@click.option("--read-only", is_flag=True,
              help="Open the store read-only for each request, so 'portradar ingest' can "
                   "write between requests (views show what the last writer left).")
@click.option("--auth/--no-auth", "auth", default=None,
              help="Require authentication even on loopback (default: only beyond it).")
@click.option("--proxy", "proxy", metavar="ADDRESS", multiple=True,
              help="A TLS proxy in front: trust its X-Forwarded-For/-Proto (repeatable); "
                   "implies --auth.")
@click.option("--no-warm", is_flag=True, help="Do not compute the overview before serving.")
@click.pass_context
@friendly
def serve(ctx: click.Context, host: str, port_: int, read_only: bool, auth: bool | None,
          proxy: tuple[str, ...], no_warm: bool) -> None:
    """Serve the dashboard and the JSON API (http://127.0.0.1:8080/ by default)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from portradar.web.app import WebSettings, create_app, is_loopback, warm
    from portradar.web.auth import ensure_tables, has_credentials

    if auth is False and not is_loopback(host):
        raise click.UsageError("--no-auth only on loopback: beyond it authentication is "
                               "required")
    if proxy and auth is None:
        auth = True  # a proxy publishes a loopback server: it is beyond loopback then
    settings = WebSettings(host=host, port=port_, require_auth=auth, reopen=read_only)
    store = open_store(ctx, read_only=read_only)
    try:
        if not read_only:
            ensure_tables(store)
        if settings.auth_required and not has_credentials(store):
            err.print("[red]portradar:[/red] authentication is required here but there is no "
                      "token or user; create one first: 'portradar serve token add NAME "
                      "--role read' or 'portradar serve user add NAME'")
            sys.exit(1)
        err.print(f"portradar serve: preparing {store.path} ...")
        app = create_app(store, settings=settings)
        if not no_warm:
            warm(app)
    except BaseException:
        store.close()
        raise
    if read_only:
        store.close()  # every request opens its own read-only connection
    mode = "read-only, reopened per request" if read_only else "writable, held open"
    err.print(f"portradar serve: http://{_url_host(host)}:{port_}/ (store {mode}; "
              f"authentication {'required' if settings.auth_required else 'not required'})")
    try:
        uvicorn.run(app, host=host, port=port_, server_header=False, log_level="info",
                    proxy_headers=bool(proxy), forwarded_allow_ips=list(proxy) or None,
                    timeout_keep_alive=5)
    finally:
        if not read_only:
            store.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- tokens -----------------------------------------------------------------------------


@serve.group()
def token() -> None:
    """Bearer tokens for scripts (stored hashed; shown once)."""


@token.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["read", "admin"]), default="read", show_default=True)
@click.pass_context
@friendly
def token_add(ctx: click.Context, name: str, role: str) -> None:
    """Create the token NAME (replacing one of that name) and print it once."""
    from portradar.web.auth import add_token

    with open_store(ctx) as store:
        value = add_token(store, name, role)
    err.print(f"token {name!r} ({role}); keep it now, it is not shown again:")
    click.echo(value)


@token.command("list")
@output_options
@click.pass_context
@friendly
def token_list(ctx: click.Context, as_json: bool, as_csv: bool) -> None:
    """The tokens (names and roles; the tokens themselves are not kept)."""
    from portradar.cli.render import render
    from portradar.web.auth import list_tokens

    with open_store(ctx, read_only=True) as store:
        rows = list_tokens(store)
    render(_plain(rows), ["name", "role", "created", "last_used"],
           output_format(as_json, as_csv), title="tokens")


@token.command("revoke")
@click.argument("name")
@click.pass_context
@friendly
def token_revoke(ctx: click.Context, name: str) -> None:
    """Delete the token NAME (a running server refuses it from the next request)."""
    from portradar.web.auth import revoke_token

    _delete(ctx, revoke_token, "token", name, "revoked")


# -- users ------------------------------------------------------------------------------


@serve.group()
def user() -> None:
    """User accounts for people (passwords stored as scrypt hashes)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["read", "admin"]), default="read", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
@friendly
def user_add(ctx: click.Context, name: str, role: str, password_stdin: bool) -> None:
    """Create the user NAME (or set a new password and role)."""
    from portradar.web.auth import add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with open_store(ctx) as store:
        add_user(store, name, password, role)
    err.print(f"user {name!r} ({role}) saved")


@user.command("list")
@output_options
@click.pass_context
@friendly
def user_list(ctx: click.Context, as_json: bool, as_csv: bool) -> None:
    """The users and their roles."""
    from portradar.cli.render import render
    from portradar.web.auth import list_users

    with open_store(ctx, read_only=True) as store:
        rows = list_users(store)
    render(_plain(rows), ["name", "role", "created"], output_format(as_json, as_csv),
           title="users")


@user.command("remove")
@click.argument("name")
@click.pass_context
@friendly
def user_remove(ctx: click.Context, name: str) -> None:
    """Delete the user NAME."""
    from portradar.web.auth import remove_user

    _delete(ctx, remove_user, "user", name, "removed")


def _delete(ctx: click.Context, delete: Any, kind: str, name: str, done: str) -> None:
    """Delete the token or user ``name``; exit 1 with a message when there is none."""
    with open_store(ctx) as store:
        found = delete(store, name)
    if not found:
        err.print(f"portradar: no {kind} named {name!r}")
        sys.exit(1)
    err.print(f"{kind} {name!r} {done}")


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (str(v) if v is not None and not isinstance(v, str) else v)
             for k, v in r.items()} for r in rows]


commands = [serve]
