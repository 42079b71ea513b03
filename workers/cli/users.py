"""``tiktok-tracker user ...``: accounts of the review web app and their roles.

A password is asked for on the terminal (twice), or read from standard input when that is
not a terminal (one line: ``printf '%s\\n' "$PW" | tiktok-tracker user add ana --role viewer``)."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from workers.accounts import ROLE_RIGHTS, ROLES, check_role
from workers.cli.common import cell, console, settings
from workers.errors import TrackerError

app = typer.Typer(
    help="Accounts of the review web app: " + "; ".join(f"{r}: {ROLE_RIGHTS[r]}" for r in ROLES) + ".",
    no_args_is_help=True,
)


def read_password(name: str) -> str:
    """From the terminal (asked twice, not echoed), else the first line of standard input."""
    if sys.stdin.isatty():
        return typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise TrackerError("no password on standard input (one line expected)")
    return line


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Login name (letters, digits, '.', '_', '@', '-')."),
    role: str = typer.Option(..., "--role", "-r", help="viewer, reviewer or admin."),
) -> None:
    """Add an account (its password from the terminal, or standard input)."""
    from workers.storage import accounts
    from workers.storage.db import session_scope

    check_role(role)
    password = read_password(name)
    with session_scope(settings().resolved_database_url) as s:
        accounts.add(s, name, role, password)
    console.print(f"Account [bold]{cell(name)}[/] added: {role} ({ROLE_RIGHTS[role]})")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON object per account.")) -> None:
    """Accounts, their roles, and when their password last changed."""
    from workers.storage import accounts
    from workers.storage.db import session_scope
    from workers.storage.models import as_utc

    with session_scope(settings().resolved_database_url) as s:
        rows = [
            {
                "name": a.name,
                "role": a.role,
                "created_at": as_utc(a.created_at).isoformat(timespec="seconds"),
                "password_changed_at": as_utc(a.password_changed_at).isoformat(timespec="seconds"),
            }
            for a in accounts.all_accounts(s)
        ]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    if not rows:
        console.print("No accounts. Add one with `tiktok-tracker user add NAME --role reviewer`.")
        return
    table = Table("name", "role", "created", "password changed")
    for r in rows:
        table.add_row(cell(r["name"]), r["role"], r["created_at"], r["password_changed_at"])
    console.print(table)


@app.command("passwd")
def passwd(
    name: str = typer.Argument(...),
    role: str | None = typer.Option(None, "--role", "-r", help="Also change the role."),
) -> None:
    """Set an account's password (ends its sessions); with --role, its role too."""
    from workers.storage import accounts
    from workers.storage.db import session_scope

    if role is not None:
        check_role(role)
    password = read_password(name)
    with session_scope(settings().resolved_database_url) as s:
        accounts.set_password(s, name, password)
        if role is not None:
            accounts.set_role(s, name, role)
    console.print(f"Password of [bold]{cell(name)}[/] changed; its sessions are over.")


@app.command("remove")
def remove(name: str = typer.Argument(...)) -> None:
    """Remove an account (its sessions end; what it reviewed keeps its name)."""
    from workers.storage import accounts
    from workers.storage.db import session_scope

    with session_scope(settings().resolved_database_url) as s:
        accounts.remove(s, name)
    console.print(f"Account [bold]{cell(name)}[/] removed.")
