"""The layers of ``workers`` (pyproject.toml, ``[tool.importlinter]``) hold: no module imports
a layer above its own, no import cycles between sibling modules, and the pure modules
(``workers.video``, ``workers.detect.scoring``, ``workers.verdict``) import neither Celery
nor SQLAlchemy. ``lint-imports`` reads the contracts; this test runs it on the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports() -> str:
    found = Path(sys.executable).with_name("lint-imports")
    return str(found) if found.exists() else shutil.which("lint-imports") or "lint-imports"


def test_the_import_contracts_hold():
    done = subprocess.run(
        [lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "0 broken" in report and report.count("KEPT") == 3, report
