"""Link a new video to the earlier video it reposts, by its frames' PDQ hashes.

``link_repost`` runs in one transaction, serialised across workers
(``lock_linking``): it finds the stored frames near the new video's frames
(the chunk index, mirrored frames too), scores each candidate video with
vPDQ's frame rules and the configured ``LinkRule``, links the new video to the best one's original
(``duplicate_of``, ``duplicate_match``), then stores the new video's hashes.
What to do with the link (reuse the verdicts, wait for them, or score anyway)
is ``RepostLink.action``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from workers.reposts import hash_index as frame_hashes
from workers.reposts.hashing import FrameHash
from workers.reposts.matching import MIN_QUALITY, LinkRule, VideoMatch, best_match, usable
from workers.storage.models import Video, VideoStatus

REUSE, WAIT, SCORE = "reuse", "wait", "score"


@dataclass(frozen=True)
class RepostLink:
    original_id: int | None  # None: no earlier video matches
    match: VideoMatch | None = None
    original_status: str | None = None

    def action(self, strong: float) -> str:
        """``reuse`` the original's verdicts (a strong match of a finished original),
        ``wait`` for them (a strong match of one still in the pipeline), else ``score``."""
        if self.original_id is None or self.match is None or self.match.strength < strong:
            return SCORE
        if self.original_status == VideoStatus.DONE:
            return REUSE
        return SCORE if self.original_status == VideoStatus.FAILED else WAIT


def find_original(session: Session, video: Video, hashes: Sequence[FrameHash], rule: LinkRule) -> RepostLink:
    """The earlier video (not failed) that ``video``'s frames match best, when ``rule`` links
    them; reposts resolve to their original, and the link's match is against the original's
    frames (when it has any), not the repost's that matched best."""
    query = usable([h.frame for h in hashes], [h.quality for h in hashes])
    mirrored = usable([h.mirror_frame for h in hashes if h.mirror], [h.quality for h in hashes if h.mirror])
    if not query:
        return RepostLink(None)
    near = frame_hashes.near_frames(session, [x for h in hashes if h.quality >= MIN_QUALITY for x in h.probes])
    candidates = {vid for vid in near.values() if vid != video.id}
    best: tuple[VideoMatch, Video] | None = None
    for vid, stored in frame_hashes.video_hashes(session, candidates).items():
        other = session.get(Video, vid)
        if other is None or other.status == VideoStatus.FAILED:
            continue
        match = best_match(query, mirrored, stored)
        if rule.links(match) and (best is None or (match.strength, -other.id) > (best[0].strength, -best[1].id)):
            best = (match, other)
    if best is None:
        return RepostLink(None)
    match, other = best
    original = session.get(Video, other.duplicate_of) if other.duplicate_of else other
    if original is None or original.status == VideoStatus.FAILED:
        original = other
    elif original is not other and (stored := frame_hashes.video_hashes(session, [original.id]).get(original.id)):
        match = best_match(query, mirrored, stored)
    return RepostLink(original.id, match, original.status)


def link_repost(session: Session, video: Video, hashes: Sequence[FrameHash], rule: LinkRule) -> RepostLink:
    """Find ``video``'s original (see ``find_original``), record the link, store its hashes."""
    frame_hashes.lock_linking(session, video)
    link = find_original(session, video, hashes, rule)
    if link.original_id is not None and video.duplicate_of is None:
        video.duplicate_of, video.duplicate_match = link.original_id, round(link.match.strength, 4)
    frame_hashes.store_hashes(session, video.id, hashes)
    return link


def current_link(session: Session, video: Video) -> RepostLink:
    """The link recorded earlier (a retried or redelivered stage), with the original's status now."""
    if video.duplicate_of is None:
        return RepostLink(None)
    original = session.get(Video, video.duplicate_of)
    strength = video.duplicate_match if video.duplicate_match is not None else 1.0
    return RepostLink(video.duplicate_of, VideoMatch(strength, strength), original.status if original else VideoStatus.FAILED)
