"""Engine and sessions for the configured database URL, and its schema.

The schema is managed by Alembic (``workers/storage/migrations``): the first
engine a process opens for a URL brings that database to the newest revision.
That is cheap when it is already there (one query), safe when several workers
start together (Postgres: an advisory lock; SQLite: retried), and also adopts
databases created before migrations existed (their tables are stamped as the
initial revision, then upgraded).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
INITIAL_REVISION = "0001"
# Any constant: the advisory lock that serialises schema upgrades on Postgres.
_PG_SCHEMA_LOCK = 0x7474_7363  # "ttsc"

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


IN_LIST_BATCH = 900  # bound parameters per IN (...) list: below every SQLite build's limit (and Postgres' 65535)


def batches(items: Sequence, size: int = IN_LIST_BATCH) -> Iterator[Sequence]:
    """``items`` in slices of ``size``: one query per slice keeps an IN (...) list of any
    length (a million detections' ids) within the drivers' limits on bound parameters."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver we ship)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def get_engine(url: str) -> Engine:
    """The process's engine for ``url``, its schema brought to the newest revision."""
    url = normalise_url(url)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            init_schema(engine)
            _engines[url] = engine
        return engine


def forget_engines(close: bool = False) -> None:
    """Drop this process's engines. After a fork, call with ``close=False`` so
    that the child opens its own connections and leaves the parent's alone."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose(close=close)
        _engines.clear()


# Alembic names each of its plugins at INFO as it loads them: in every worker process, at each start.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head, "no migrations found"
    return head


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    from alembic import command

    revision = current_revision(connection)
    if revision == head_revision():
        return
    cfg = _alembic_config(connection)
    if revision is None and inspect(connection).has_table("videos"):
        command.stamp(cfg, INITIAL_REVISION)  # made by create_all before migrations existed
    command.upgrade(cfg, "head")


def init_schema(engine: Engine, attempts: int = 5) -> None:
    """Bring the database to the newest schema (idempotent; safe from several processes)."""
    with engine.connect() as conn:
        if current_revision(conn) == head_revision():
            return
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
                _upgrade(conn)
            return
        except OperationalError:
            # SQLite: another process created the tables between our check and
            # our DDL ("already exists"), or holds the write lock. Look again.
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A transaction: committed on success, rolled back on error."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
