"""Zeeschuimer's TikTok export (``zeeschuimer:FILE``, or a folder where such exports land).

Zeeschuimer, the Digital Methods Initiative's browser extension, records the
items a researcher's browser receives from TikTok's web API and exports them,
one file per platform: NDJSON (one captured item per line, an envelope with
TikTok's own item JSON in ``data``; see ``export_ndjson``) or, since 2026, CSV
(4CAT's columns; see ``export_csv``). Each TikTok post becomes a reference to
its page URL, with author, caption, hashtags, posted time and counts
(``workers.sources.tiktok_items``); the captured CDN media links expire within
hours, so videos are downloaded from their page. A comments export
(``tiktok-comments``) or another platform's is named as such, never read as videos.
"""

from __future__ import annotations

from workers.sources.export_files import ExportFileSource


class ZeeschuimerExport(ExportFileSource):
    name = "zeeschuimer"
    description = "A Zeeschuimer TikTok export (zeeschuimer:FILE.ndjson), or a folder where such exports land."
    examples = ("zeeschuimer:/data/exports/tiktok.ndjson", "zeeschuimer:~/Downloads/zeeschuimer")
    not_examples = ("zeeschuimer.ndjson", "https://example.com/zeeschuimer:x")
    prefix = "zeeschuimer:"
