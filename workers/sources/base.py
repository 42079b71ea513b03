"""What every source shares: the listing and the source API (the reference it lists:
``workers.video_ref``).

A *source* turns a spec the user typed (``tiktok:trending``, ``@someone``,
``#tag``, a URL, ``urls.txt``, a folder) into references to videos, the way a
yt-dlp extractor turns a URL into info: each source class says which specs it
handles (``suitable``) and lists them (``list_videos``). ``registry`` picks
the first suitable one, with the generic yt-dlp URL source last.

"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from workers.video_ref import VideoRef

BLOCKED_WARNING = "0 videos: likely blocked or rate limited"


def without_prefix(spec: str, prefix: str) -> str:
    """``spec`` stripped, and without ``prefix`` (case-insensitive) when it starts with it."""
    spec = spec.strip()
    return spec[len(prefix) :].strip() if spec.lower().startswith(prefix) else spec


def spec_path(spec: str, prefix: str) -> Path:
    """The local path a spec names, with or without its ``prefix`` (``~`` expanded)."""
    return Path(without_prefix(spec, prefix)).expanduser()


def prefixed_path(spec: str, prefix: str) -> str:
    """``prefix`` + the absolute path a local-file spec names (``urls:links.txt`` -> ``urls:/home/me/links.txt``)."""
    return prefix + str(spec_path(spec, prefix).resolve())


@dataclass
class Listing:
    """What one run of a source found: the new videos and any warnings.

    ``warnings`` are for the watch's status line: e.g. TikTok answering with
    no videos at all (``BLOCKED_WARNING``) is a warning, never a silent success.
    """

    source: str
    videos: list[VideoRef] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    listed: int = 0  # videos the source returned, before those already seen were dropped

    def offer(self, ref: VideoRef, seen: Container[str], limit: int) -> None:
        """Count ``ref`` as listed; keep it when it is new (not in ``seen``) and fewer than ``limit`` are kept."""
        self.listed += 1
        if ref.key not in seen and len(self.videos) < limit:
            self.videos.append(ref)

    def __iter__(self) -> Iterator[VideoRef]:
        return iter(self.videos)

    def __len__(self) -> int:
        return len(self.videos)


class Source(ABC):
    """One kind of input. Subclasses set ``name``, ``description`` and ``examples``.

    ``examples`` are specs the source must claim (checked by the tests, like
    yt-dlp's ``_TESTS``); ``not_examples`` specs it must leave to others.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    examples: ClassVar[tuple[str, ...]] = ()
    not_examples: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def suitable(cls, spec: str) -> bool:
        """Whether this source handles ``spec``; cheap and offline."""

    @classmethod
    def canonical(cls, spec: str) -> str:
        """The one spelling of ``spec`` that watches store (``@x`` -> ``tiktok:user:x``, paths absolute).

        Offline; the result is a spec this source still claims."""
        return spec.strip()

    @abstractmethod
    def list_videos(self, spec: str, settings, limit: int | None = None) -> Listing:
        """List up to ``limit`` (default ``settings.source_limit``) videos of ``spec``.

        Raises ``SourceError`` when the spec or setup cannot work, and
        ``SourceUnavailable`` when trying again later may help.
        """
