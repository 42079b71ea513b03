"""4CAT's TikTok dataset (``4cat:FILE.csv`` or ``4cat:FILE.ndjson``, or a folder where they land).

4CAT, the Digital Methods Initiative's capture and analysis toolkit, makes TikTok
datasets from Zeeschuimer's captures and offers them as CSV (one row per video,
``map_item``'s columns; see ``export_csv`` for every form it has had) or as its
NDJSON file (each item's fields with Zeeschuimer's envelope in ``__import_meta``;
see ``export_ndjson``). Each video becomes a reference to its page, built from
its author's handle and its id, with its metadata. A comments dataset, or a
dataset of another platform, is named as such, never read as videos.
"""

from __future__ import annotations

from workers.sources.export_files import ExportFileSource


class FourCatExport(ExportFileSource):
    name = "4cat"
    description = "A 4CAT TikTok dataset (4cat:FILE.csv or 4cat:FILE.ndjson), or a folder where such exports land."
    examples = ("4cat:/data/exports/tiktok-dataset.csv", "4cat:~/Downloads/4cat")
    not_examples = ("4cat.csv", "https://4cat.example.org/results/x.csv")
    prefix = "4cat:"
