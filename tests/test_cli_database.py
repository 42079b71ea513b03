"""Every command that reads or writes the results database reports one that cannot be
reached the same way: one line on stderr naming the database (password hidden) and the
driver's reason, exit status 2, nothing on stdout, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "workers.cli.main"]


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "7"],
        ["results", "--format", "json"],
        ["watch", "list"],
        ["alerts", "list"],
        ["review", "1", "confirmed"],
    ],
    ids=" ".join,
)
def test_an_unreachable_database_is_one_line_and_exit_2(tmp_path, closed_port, args):
    env = {
        **os.environ, "TT_DATA_DIR": str(tmp_path / "data"), "TT_MODELS_DIR": str(tmp_path / "models"),
        "TT_DATABASE_URL": f"postgresql+psycopg://tt:secret-pw@127.0.0.1:{closed_port}/tt", "COLUMNS": "200",
    }
    proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: results database postgresql+psycopg://tt:***@127.0.0.1:{closed_port}/tt: "), lines
    assert lines[0].endswith("(check TT_DATABASE_URL)") and "secret-pw" not in proc.stderr
