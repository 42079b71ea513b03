"""NDJSON research exports: Zeeschuimer's export, and 4CAT's NDJSON download of a dataset
made from one. One JSON object per line, lines ending in ``\\n``.

Read from the tools' sources (Zeeschuimer ``js/zs-background.js`` and
``popup/interface.js`` at ffa2781; 4CAT ``backend/lib/search.py``,
``common/lib/helpers.py`` and ``datasources/tiktok*/`` at 227bead1):

- Zeeschuimer writes each stored capture as ``JSON.stringify`` of an envelope:
  ``nav_index``, ``item_id``, ``timestamp_collected`` (ms), ``last_updated``
  (ms, since 2026-02), ``source_platform``, ``source_platform_url``,
  ``source_url``, ``user_agent`` (since 2023-01), ``data`` (TikTok's own item)
  and ``id`` (its database row). Archives hold the older envelopes:
  ``source_platform``, ``source_platform_url``, ``source_url``, ``data``
  (2021); plus ``nav_index`` and ``item_id`` (2022-01); plus
  ``timestamp_collected`` (2022-08). One file per platform:
  ``source_platform`` is ``tiktok.com`` for posts and ``tiktok-comments``
  for comments (since 2024-04; a comment's ``id`` is its ``cid``).
  An item captured again on another page is stored again (the default);
  with "update" the row keeps its place and gets ``last_updated``.
- 4CAT's download puts the item's fields at the top level with the envelope,
  less ``data``, under ``__import_meta`` (``json.dumps``: ASCII with
  ``\\uXXXX`` escapes); from 2022-10 to 2023-04 it wrote the bare item.
  Pseudonymised datasets have every value under an ``author*`` key replaced
  by a BLAKE2b hex digest (anonymised: ``REDACTED``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workers.sources.export_items import COMMENTS, ExportItem, video_id_problem
from workers.sources.tiktok_items import ref_from_item

TIKTOK = "tiktok.com"  # Zeeschuimer's platform id of TikTok posts
TIKTOK_COMMENTS = "tiktok-comments"


def read_ndjson(path: Path) -> Iterator[ExportItem]:
    """Each line of ``path`` as an item (blank lines skipped); lines are split at ``\\n`` only,
    so a raw U+2028 in a caption stays inside its line."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.decode("utf-8", errors="replace").replace("\x00", "")
            if number == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield ExportItem(number, problem=f"not JSON ({exc.msg})")
                continue
            yield item_from_record(number, record)


def item_from_record(number: int, record: Any) -> ExportItem:
    """One line's item: a Zeeschuimer envelope, a 4CAT item with ``__import_meta``, or a bare item."""
    if not isinstance(record, dict):
        return ExportItem(number, problem="not a JSON object")
    envelope = "source_platform" in record or "item_id" in record
    if isinstance(record.get("__import_meta"), dict):
        meta, item = record["__import_meta"], record
    elif isinstance(record.get("data"), dict) and (envelope or "id" not in record):
        meta, item = record, record["data"]
    elif envelope:
        return ExportItem(number, problem='no captured item ("data")')
    else:
        meta, item = {}, record
    platform = str(meta.get("source_platform") or "").strip().lower().removeprefix("www.")
    if platform == TIKTOK_COMMENTS or ("cid" in item and "aweme_id" in item):
        return ExportItem(number, problem="a TikTok comment, not a video", kind=COMMENTS)
    if platform and platform != TIKTOK:
        return ExportItem(number, problem=f"an item of {platform}, not a TikTok video", kind=f"an export of {platform} items")
    problem = video_id_problem(item.get("id"))
    if problem:
        return ExportItem(number, problem=problem)
    if not platform and not ("createTime" in item or "desc" in item):
        return ExportItem(number, problem="not a TikTok video item (no createTime or desc)")
    captured = next((t for t in (meta.get("last_updated"), meta.get("timestamp_collected")) if _is_number(t)), None)
    return ExportItem(number, ref=ref_from_item(item, keep_media_url=False), captured=captured)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
