"""The one interface every detector kind implements.

An ``Extractor`` does the expensive per-frame work once (a VGG16 forward pass,
face detection + embedding) and is shared by every target that needs it. A
``Target`` turns an extractor's output for a batch of frames into one score
per frame. Extractors load their model lazily, under a lock, inside the
process that uses them (never in a parent that forks).
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workers.errors import TrackerError
from workers.verdict import FrameScore, VerdictRule

_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    """A target's name becomes its folder's name: 1-64 letters, digits, '.', '_' or '-'."""
    if not _TARGET_NAME.match(name):
        raise TrackerError(f"invalid target name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


class Extractor(ABC):
    """Per-frame work shared by all targets of one kind."""

    key: ClassVar[str]  # targets name the extractor they need by this key

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False

    def load(self) -> None:
        """Load the model once; safe to call from several threads."""
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    @abstractmethod
    def _load(self) -> None: ...

    def warm(self, batch_size: int) -> None:
        """Load the model and do whatever first calls pay for once (tracing), so
        that the first real batch runs at full speed."""
        self.load()

    @property
    @abstractmethod
    def identity(self) -> dict:
        """What a target must have been built with to use this extractor's output."""

    @abstractmethod
    def extract(self, images: Sequence[np.ndarray]) -> Any:
        """Per-frame output for RGB uint8 ``images`` (one entry per image)."""


class Target(ABC):
    """A named thing to look for. Saved as a bundle folder (see ``targets.bundle``)."""

    kind: ClassVar[str]  # "classifier" | "face"
    extractor_key: ClassVar[str]

    def __init__(self, name: str, threshold: float, rule: VerdictRule, version: str = "") -> None:
        self.name = name
        self.threshold = threshold
        self.rule = rule
        self.version = version

    @abstractmethod
    def check_extractor(self, extractor: Extractor) -> None:
        """Raise ``BackboneMismatch`` if ``extractor`` is not the one this target was built on."""

    @abstractmethod
    def score(self, extracted: Any, indices: Sequence[int], timestamps: Sequence[float]) -> list[FrameScore]:
        """One ``FrameScore`` per frame, from the extractor's output for those frames."""

    # --- persistence -------------------------------------------------------
    @abstractmethod
    def config(self) -> dict:
        """Kind-specific fields of ``target.json`` (JSON-serialisable)."""

    @abstractmethod
    def save_artifacts(self, folder: Path) -> None:
        """Write the model files (head, gallery) into the bundle ``folder``."""

    @classmethod
    @abstractmethod
    def from_bundle(cls, meta: dict, folder: Path) -> Target:
        """Rebuild the target from ``target.json`` contents and its ``folder``."""

    @abstractmethod
    def fingerprint(self) -> bytes:
        """Bytes that identify this target's learned state (used for its version)."""
