"""Which video a file, URL or listed item is: the one identity rule of scan and pipeline.

A video is identified by its platform id when it has one (``platform``,
``platform_id``: unique), else by its source (the path or URL it came as).
Its content (the file's hash now; its frames' PDQ hashes in
``workers.reposts.linking``) only *links* copies: a video whose bytes another
video already has is a repost of it (``duplicate_of``, match 1.0), with a row
of its own. So no path of entry ever rewrites another video's row: scanning a
local copy of a video the pipeline holds adds a linked row, and the pipeline
does the same for a file scanned before.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workers.reposts.linking import RepostLink
from workers.reposts.matching import VideoMatch
from workers.storage import results
from workers.storage.models import Video, VideoStatus
from workers.video_ref import VideoRef, canonical_source

SAME_CONTENT = VideoMatch(1.0, 1.0)


def link_by_content(session: Session, video: Video, same: Video | None = None) -> RepostLink:
    """Link ``video`` (its ``content_hash`` set) to the video it repeats: the original of
    ``same`` (another row of its platform video) when given, else the earliest video with
    the same bytes (``results.original_of``). Serialised per content (``lock_content``): of
    two copies hashed at once, the second links to the first. The link says what to do:
    reuse the original's verdicts, wait for them, or score (``RepostLink.action``)."""
    if video.content_hash:
        results.lock_content(session, video.content_hash)
    original = results.original_of(session, video, same)
    if original is None or original.id == video.id:
        return RepostLink(None)
    if video.duplicate_of is None or video.duplicate_of == original.id:
        video.duplicate_of, video.duplicate_match = original.id, 1.0
    return RepostLink(original.id, SAME_CONTENT, original.status)


def identify_download(session: Session, video: Video, digest: str, ref: VideoRef | None) -> RepostLink:
    """A pipeline video once downloaded: record its content hash and what the download
    learnt (its platform id, when no other row holds it), and link it to the video it repeats."""
    video.content_hash = digest
    same = None
    if ref is not None:
        results.apply_metadata(video, ref)
        same = results.claim_platform_id(session, video, ref)
    return link_by_content(session, video, same)


def identify_file(session: Session, source: str, digest: str, video_id: int | None = None) -> tuple[Video, bool]:
    """The video a scan is about: ``video_id`` (a rescan of a known video), else the one known
    as ``source``, else a new row linked by content to an earlier copy. Returns it and whether
    its stored verdicts still describe this content (False: new, or the file at this source changed)."""
    source = canonical_source(source)
    video = session.get(Video, video_id) if video_id is not None else results.video_by_source(session, source)
    if video is not None and video.content_hash == digest:
        return video, True
    if video is None:
        try:
            with session.begin_nested():
                video = Video(source=source, content_hash=digest, status=VideoStatus.QUEUED)
                session.add(video)
                session.flush()
        except IntegrityError:  # the same source, added a moment ago by another scan or enqueue
            video = results.video_by_source(session, source)
            if video is None:
                raise
            return identify_file(session, source, digest, video.id)
    else:  # other bytes under the same name: its verdicts and links were about the old ones
        video.content_hash, video.duplicate_of, video.duplicate_match = digest, None, None
    link_by_content(session, video)
    return video, False


def known_job(session: Session, source: str) -> Video | None:
    """The video already submitted (or scanned) as ``source``, if any: what a repeated
    ``enqueue`` answers with instead of a new row (its local path resolved: ``canonical_source``)."""
    return results.video_by_source(session, canonical_source(source)) or results.video_by_source(session, source)  # or a row from before


def covers(video: Video, target_versions: Mapping[str, str]) -> bool:
    """Whether ``video`` is (or will be) scored for every target at these versions: finished
    with all of their verdicts, or still on its way with them all named."""
    if video.status == VideoStatus.DONE:
        found = {(d.target_name, d.target_version) for d in video.detections}
        return all(pair in found for pair in target_versions.items())
    if video.status == VideoStatus.FAILED:
        return False
    return set(target_versions) <= set(video.targets or ())
