"""Errors a user can act on.

Every error the product raises on bad input derives from ``TrackerError``; the
CLI prints ``str(err)`` as one line (no traceback) and exits non-zero, and the
scan records it as the ``failed`` reason of the video.
"""


class TrackerError(Exception):
    """Base class: a clear, one-line problem with the user's input or setup."""


class BadVideo(TrackerError):
    """The file is not a decodable video, or holds no frames."""


class BadLabels(TrackerError):
    """A labels CSV or image folder cannot be used for training."""


class BackboneMismatch(TrackerError):
    """A target was trained on other backbone weights or preprocessing."""


class BackboneUnavailable(TrackerError):
    """No VGG16 weights can be loaded with the current settings."""


class BadInputSize(TrackerError):
    """A VGG16 input size it cannot take (not a multiple of 32 from 64 to 448)."""


class NoFace(TrackerError):
    """A reference photo holds no usable face."""


class TargetNotFound(TrackerError):
    """No saved target has that name."""


class BadTarget(TrackerError):
    """A target bundle on disk is missing files or is malformed."""


class TransientError(TrackerError):
    """Failed in a way that may pass later (timeout, reset connection, HTTP 429 or 5xx): retry it."""


class SourceError(TrackerError):
    """A source (trending, user, hashtag, URL list, folder ...) cannot be listed as given or configured."""


class SourceUnavailable(TransientError):
    """A source could not be listed just now (network error, timeout, rate limit)."""


class DownloadError(TrackerError):
    """A video cannot be fetched and retrying will not help (404, too big, too long, unsupported URL)."""


class UnsafeURL(DownloadError):
    """A URL is refused by the download safety policy: its scheme, or an address it resolves to."""


class TransientDownloadError(TransientError):
    """A download failed (after its own retries) in a way that may pass later."""


class AlertError(TrackerError):
    """An alert channel is misconfigured, or kept failing after its retries."""


class BadDuration(TrackerError):
    """A duration or a point in time (``15m``, ``2h``, ``2026-01-31``) cannot be read."""


class Postponed(Exception):
    """Not an error: the stage must run again in ``seconds`` (a repost waiting for its
    original's verdicts). Not a ``TrackerError``: nothing failed, and no retry budget is spent on it."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds
