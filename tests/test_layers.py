"""The layers of ``workers`` (pyproject.toml, ``[tool.importlinter]``) hold: no module imports
a layer above its own, no import cycles between sibling modules, and the pure modules
(``workers.video``, ``workers.detect.scoring``, ``workers.verdict``) import neither Celery
nor SQLAlchemy. ``lint-imports`` reads the contracts; this test runs it on the checkout."""

from __future__ import annotations

import re
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
    assert "0 broken" in report and "BROKEN" not in report, report


def top_level_modules() -> set[str]:
    """``workers``' packages and modules, as README names them (``video/``, ``scan.py``)."""
    found = set()
    for path in (ROOT / "workers").iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            found.add(f"{path.name}/")
        elif path.suffix == ".py" and path.name != "__init__.py":
            found.add(path.name)
    return found


def contract_layers() -> tuple[set[str], set[str]]:
    """The modules the layers contract names, and those of them marked optional ``(...)``."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    names = {n.strip() for layer in layers for n in layer.replace(":", "|").split("|")}
    optional = {n[1:-1] for n in names if n.startswith("(")}
    return {n.strip("()") for n in names}, optional


def as_readme(module: str) -> str:
    """``workers.video`` as README's layout names it: ``video/`` or ``video.py``."""
    tail = module.removeprefix("workers.")
    return f"{tail}.py" if (ROOT / "workers" / f"{tail}.py").is_file() else f"{tail}/"


def test_every_module_has_a_layer_and_a_line_in_the_readme_layout():
    named, optional = contract_layers()
    modules = top_level_modules()
    placed = {as_readme(m) for m in named}
    assert modules - placed == set(), "add these to a layer in pyproject.toml [tool.importlinter]"
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    # Each entry of the tree (two spaces in): its names, a run of spaces, what they are.
    names = [re.split(r"\s{2,}", line.strip())[0].split() for line in layout.splitlines()
             if line.startswith("  ") and not line.startswith("   ")]  # continuation lines are indented further
    listed = {word for line in names for word in line if word.endswith(("/", ".py"))}
    listed = {w for w in listed if w not in ("tests/", "bench/", "infra/", "docs/", "models/", "workers/")}
    assert modules - listed == set(), "README's Layout lacks these"
    assert listed - modules <= {as_readme(m) for m in optional}, "README's Layout names modules that do not exist"
