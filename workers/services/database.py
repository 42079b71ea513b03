"""How an unreachable or broken results database is reported: one line, the same
for every command and use case (``workers.cli.main`` wraps every command in it).
A database that answers is not blamed on its URL: the query that failed is."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from workers.errors import TrackerError


class DatabaseUnavailable(TrackerError):
    """The results database cannot be reached or used."""


def database_problem(url: str, exc: DBAPIError, answers: bool = False) -> str:
    """``results database URL (password hidden): first line of the driver's reason (check TT_DATABASE_URL)``;
    ``answers`` (the database takes connections): the query is at fault, not the URL."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None and str(exc.orig).strip() else type(exc).__name__
    try:
        safe = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as set
        safe = url
    if answers:
        return f"results database {safe}: a query failed: {reason} (the database answers: please report this with the command)"
    return f"results database {safe}: {reason} (check TT_DATABASE_URL)"


def database_answers(url: str, timeout: float = 3.0) -> bool:
    """Whether the database at ``url`` takes a new connection and reads its schema (a SQLite
    file is opened read-only: a mistyped path is not created, a file that is no database fails)."""
    import sqlite3

    from workers.storage.db import normalise_url

    try:
        url = normalise_url(url)
        if url.startswith("sqlite:///"):
            with closing(sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True, timeout=timeout)) as db:
                db.execute("PRAGMA schema_version").fetchone()
            return True
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": timeout} if url.startswith("postgresql") else {})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - any failure: it does not answer
        return False
    return True


@contextmanager
def database_errors(url: str | Callable[[], str]) -> Iterator[None]:
    """Turn a database error inside into ``DatabaseUnavailable`` (one line, no traceback);
    ``url``: the database's URL, or a function that gives it (read only on an error)."""
    try:
        yield
    except DBAPIError as exc:
        where = url() if callable(url) else url
        raise DatabaseUnavailable(database_problem(where, exc, database_answers(where))) from None
