"""Zeeschuimer's TikTok export (``zeeschuimer:FILE.ndjson``, or a folder of them).

Zeeschuimer, the Digital Methods Initiative's browser extension, records
the items a researcher's browser receives from TikTok's web API and exports
them as NDJSON: one captured item per line, an envelope (``item_id``,
``timestamp_collected``, ``source_platform`` such as ``tiktok.com``,
``source_platform_url``, ...) with TikTok's own item JSON in ``data``. Each
TikTok item becomes a reference to its page URL, with author, caption,
hashtags, posted time and counts (``workers.sources.tiktok_items``). The
captured CDN media links expire within hours, so videos are downloaded from
their page. Lines of other platforms are skipped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from workers.sources.export_files import ExportFileSource
from workers.sources.tiktok_items import ref_from_item
from workers.video_ref import VideoRef


class ZeeschuimerExport(ExportFileSource):
    name = "zeeschuimer"
    description = "A Zeeschuimer TikTok export (zeeschuimer:FILE.ndjson), or a folder where such exports land."
    examples = ("zeeschuimer:/data/exports/tiktok.ndjson", "zeeschuimer:~/Downloads/zeeschuimer")
    not_examples = ("zeeschuimer.ndjson", "https://example.com/zeeschuimer:x")
    prefix = "zeeschuimer:"
    suffixes = (".ndjson", ".jsonl")

    def items(self, path: Path) -> Iterator[tuple[int, VideoRef | str]]:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    captured = json.loads(line.replace("\x00", ""))
                except json.JSONDecodeError as exc:
                    yield number, f"not JSON ({exc.msg})"
                    continue
                if not isinstance(captured, dict) or not isinstance(captured.get("data"), dict):
                    yield number, 'no captured item ("data")'
                    continue
                platform = str(captured.get("source_platform") or "tiktok.com").lower()
                if "tiktok" not in platform:
                    yield number, f"not a TikTok item ({platform})"
                    continue
                ref = ref_from_item(captured["data"], keep_media_url=False)
                yield number, ref if ref is not None else "TikTok item without an id"
