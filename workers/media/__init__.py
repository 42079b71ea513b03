"""Media: the object store every stage reads and writes (a folder, or S3), its key scheme,
and the formats of what it holds (frame batches, score files)."""

from __future__ import annotations

from workers.media.store import LocalMediaStore, MediaStore, MediaStoreError


def store_from_settings(settings) -> MediaStore:
    """The media store ``media_url`` names: empty, the folder ``<data_dir>/media``; ``s3://bucket/prefix``,
    a bucket (``workers.media.s3``); ``file:///path`` or an absolute path, that folder."""
    url = (settings.media_url or "").strip()
    if not url:
        return LocalMediaStore(settings.media_dir)
    if url.startswith("s3://"):
        from workers.media.s3 import s3_store_from_settings

        return s3_store_from_settings(settings)
    if url.startswith("file://"):
        url = url[len("file://") :]
    if url.startswith("/"):
        return LocalMediaStore(url)
    raise MediaStoreError(f"TT_MEDIA_URL: {url!r} is neither s3://bucket[/prefix] nor an absolute folder (empty: <data_dir>/media)")
