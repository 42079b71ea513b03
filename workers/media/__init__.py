"""Media: the object store every stage reads and writes (a folder, or S3), its key scheme,
and the formats of what it holds (frame batches, score files).

Which store ``media_url`` names: each store module ends with its ``STORE`` (a
``MediaStoreKind``: the URL schemes it serves, how to open it from the settings);
adding a store is its module plus one line in ``STORE_MODULES``. The modules are
imported on first use, like ``workers.detect.registry``'s kinds.
"""

from __future__ import annotations

import importlib
import re
from functools import cache

from workers.media.store import MediaStore, MediaStoreError, MediaStoreKind

# In the order the error for a URL no store takes lists the accepted forms.
STORE_MODULES = (
    "workers.media.s3",
    "workers.media.store",
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


@cache
def store_kinds() -> dict[str, MediaStoreKind]:
    """Every registered store, by each ``media_url`` scheme it serves ("": an empty URL or a bare path)."""
    declared = [importlib.import_module(name).STORE for name in STORE_MODULES]
    return {scheme: kind for kind in declared for scheme in kind.schemes}


def store_from_settings(settings) -> MediaStore:
    """The media store ``media_url`` names, by its scheme: empty, the folder ``<data_dir>/media``;
    ``s3://bucket/prefix``, a bucket (``workers.media.s3``); ``file:///path`` or an absolute path, that folder."""
    url = (settings.media_url or "").strip()
    scheme = _SCHEME.match(url)
    kind = store_kinds().get(scheme.group(1) if scheme else "")
    store = kind.from_settings(settings, url) if kind else None
    if store is None:
        forms = " nor ".join(dict.fromkeys(known.form for known in store_kinds().values()))
        raise MediaStoreError(f"TT_MEDIA_URL: {url!r} is neither {forms}")
    return store
