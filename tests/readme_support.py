"""README sections generated from the code (the settings, the alert channels): a test compares
each with what the code says now; ``TT_UPDATE_README=1`` rewrites them instead (review the diff)."""

from __future__ import annotations

import os
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def check_generated(name: str, text: str) -> None:
    """README's text between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->`` is ``text``."""
    begin, end = f"<!-- generated: {name} -->\n", f"<!-- end generated: {name} -->"
    readme = README.read_text()
    assert readme.count(begin) == 1 and readme.count(end) == 1, f"README needs one {begin.strip()} ... {end} pair"
    head, rest = readme.split(begin)
    current, tail = rest.split(end)
    wanted = f"\n{text.strip()}\n\n"
    if os.environ.get("TT_UPDATE_README"):
        README.write_text(head + begin + wanted + end + tail)
    else:
        assert current == wanted, f"README's {name!r} section is stale: rerun this test with TT_UPDATE_README=1"
