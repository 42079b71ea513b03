"""How an unreachable or broken results database is reported: one line, the same
for every command and use case (``workers.cli.main`` wraps every command in it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from workers.errors import TrackerError


class DatabaseUnavailable(TrackerError):
    """The results database cannot be reached or used."""


def database_problem(url: str, exc: DBAPIError) -> str:
    """``results database URL (password hidden): first line of the driver's reason (check TT_DATABASE_URL)``."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None and str(exc.orig).strip() else type(exc).__name__
    try:
        safe = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as set
        safe = url
    return f"results database {safe}: {reason} (check TT_DATABASE_URL)"


@contextmanager
def database_errors(url: str | Callable[[], str]) -> Iterator[None]:
    """Turn a database error inside into ``DatabaseUnavailable`` (one line, no traceback);
    ``url``: the database's URL, or a function that gives it (read only on an error)."""
    try:
        yield
    except DBAPIError as exc:
        raise DatabaseUnavailable(database_problem(url() if callable(url) else url, exc)) from None
