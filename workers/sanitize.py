"""Make scraped metadata (captions, author names, ids) safe to show and export.

Metadata from a platform is hostile input: captions of 100 KB, control
characters that rewrite a terminal, bidi overrides that reverse what a reader
sees, line breaks that split a table row, ``=cmd|...`` cells that a
spreadsheet runs, ``../`` in anything that might become a name, text that is
not valid Unicode (JSON allows a lone surrogate such as ``"\ud83d"``, half an
emoji; a file name may hold undecodable bytes). We keep the metadata as it
came, except for what no database or UTF-8 stream can take, and clean it at
the edge, where it is shown:

- ``storable``: what sources apply to everything they scrape, before it is a
  ``VideoRef``: every string valid Unicode without NUL characters.
- ``sanitize``: text for a terminal, table, JSON or alert (one line by default).
- ``csv_cell``: ``sanitize`` plus protection against spreadsheet formulas.
- ``safe_name``: a file-name-safe slug, for the rare place a name is needed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TypeVar

# Bidi embedding/override/isolate controls: they reorder what a reader sees.
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}
_LINE_BREAKS = {"\n", "\r", "\u2028", "\u2029", "\x0b", "\x0c", "\x85"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SPACES = re.compile(r"\s+")
_SLUG_BAD = re.compile(r"[^A-Za-z0-9._-]+")
T = TypeVar("T")

DEFAULT_LIMIT = 500
ELLIPSIS = "…"


def storable_text(text: str) -> str:
    """``text`` as a database and a UTF-8 stream take it: NULs dropped, a surrogate pair
    left split (as JSON may write an emoji) joined, a lone surrogate replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def storable(value: T) -> T:
    """Scraped data made storable: every string in it (dict keys and values, list and tuple
    items, at any depth) passed through ``storable_text``; other values as they are."""
    if isinstance(value, str):
        return storable_text(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [storable(v) for v in value]  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(storable(v) for v in value)  # type: ignore[return-value]
    return value


def sanitize(value: object, limit: int | None = DEFAULT_LIMIT, *, multiline: bool = False) -> str:
    """Printable text: control and bidi characters removed, whitespace tidied, length capped.

    ``None`` becomes ``""``; other objects their ``str``. One line unless
    ``multiline`` (then line breaks are kept as ``\\n``, other controls still
    go). ``limit`` caps the length in characters (``None``: no cap), marking a
    cut with an ellipsis. Path separators are harmless in displayed text and
    kept: nothing displayed ever becomes a path (``safe_name`` is for that).
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > 4 * limit + 64:
        text = text[: 4 * limit + 64]  # don't scan megabytes to show a few hundred characters
    text = storable_text(text)  # a split emoji shows whole; a lone surrogate as U+FFFD
    out = []
    for ch in text:
        if ch in _LINE_BREAKS:
            out.append("\n" if multiline else " ")
        elif ch == "\t":
            out.append(" ")
        elif ch in _BIDI:
            continue
        elif unicodedata.category(ch) in ("Cc", "Co"):  # controls, private use
            continue
        else:
            out.append(ch)
    text = "".join(out)
    if multiline:
        lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
        text = "\n".join(lines).strip()
        text = re.sub(r"\n{3,}", "\n\n", text)
    else:
        text = _SPACES.sub(" ", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)].rstrip() + ELLIPSIS
    return text


def csv_cell(value: object, limit: int | None = 2000) -> str:
    """``sanitize`` for a CSV cell: a leading ``= + - @`` is quoted so spreadsheets show, not run, it."""
    text = sanitize(value, limit)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text


def safe_name(value: object, fallback: str = "unnamed", limit: int = 64) -> str:
    """A slug safe as one path component: ``[A-Za-z0-9._-]``, no leading dot, never empty.

    ``"../../etc/passwd"`` becomes ``"etc_passwd"``; accents are folded
    (``"Café"`` -> ``"Cafe"``).
    """
    text = unicodedata.normalize("NFKD", sanitize(value, None)).encode("ascii", "ignore").decode()
    text = _SLUG_BAD.sub("_", text).strip("._-")
    text = re.sub(r"\.{2,}", ".", text)[:limit].strip("._-")
    return text or fallback
