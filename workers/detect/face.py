"""Face targets: dlib face detection + identity embeddings, matched to enrolled photos.

``FaceEmbedder`` is the shared per-frame extractor: dlib's HOG frontal face
detector finds faces, the 5-point shape predictor aligns them and dlib's
ResNet face recognition model turns each into a 128-number embedding. The
models are the files shipped in the ``face_recognition_models`` package (no
download). Two embeddings of the same person are usually closer than 0.6
(euclidean); we default to a stricter 0.5 (``Settings.face_tolerance``).

``FaceTarget`` holds the enrolled gallery (one embedding per reference photo)
and scores a frame ``1 - distance`` of its closest face to the gallery, so
``threshold = 1 - tolerance``. Reviewers' "not this person" marks fill a
*negative* gallery: a face then counts only when it is nearer to the gallery
than to every negative (faces nearer a negative are ignored). ``enroll_faces`` builds one from photos: no
training, no labelling.

Detection speed and accuracy: HOG cost grows with the pixels it scans
(upsample 1 doubles each side). Images whose longest side exceeds
``detect_max_side`` are scaled down for detection only; boxes are mapped back
and landmarks and embeddings are computed on the full-resolution image. The
box the detector returns steers the 5-point alignment, so detecting at another
scale moves embeddings by ~0.03 on average (up to ~0.2): on the seed videos,
detecting at 640-800 px instead of 1024 made 1-2 Biden frames match the Trump
photos at tolerance 0.5. The default (1024, upsample 1) leaves the seed's
576x1024 frames untouched (dlib's reference behaviour), finds faces down to
~35 px there, and caps the cost of larger frames and photos: ~0.19 s detection
plus ~0.07 s per face embedded, per frame on one CPU core.
"""

from __future__ import annotations

import importlib.resources
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workers.detect.base import Extractor, Target, check_name
from workers.detect.kind import DetectorKind
from workers.detect.views import FrameView
from workers.errors import BackboneMismatch, NoFace, TrackerError
from workers.images import IMAGE_SUFFIXES, images_in, read_rgb
from workers.settings import Settings
from workers.verdict import FrameScore, VerdictRule

EMBEDDING_SIZE = 128
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1"
SHAPE_MODEL = "shape_predictor_5_face_landmarks"
DETECTOR = "hog"
GALLERY_FILE = "gallery.npy"
NEGATIVES_FILE = "negatives.npy"

# Defaults declared once, in the settings object.
DEFAULT_TOLERANCE: float = Settings.model_fields["face_tolerance"].default
DEFAULT_UPSAMPLE: int = Settings.model_fields["face_upsample"].default
# Larger images are scaled to this longest side for HOG detection (see module docstring).
DEFAULT_DETECT_MAX_SIDE = 1024
# A person can appear briefly: two matching frames are enough, whatever the length.
DEFAULT_FACE_RULE = VerdictRule(min_fraction=0.0, min_frames=2)

Box = tuple[int, int, int, int]  # (top, right, bottom, left), like face_recognition


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image: where it is and who it looks like."""

    box: Box  # (top, right, bottom, left) in the coordinates of the image passed in
    embedding: np.ndarray  # (128,) float32 identity embedding


def model_file(name: str) -> Path:
    """Path of a model file shipped in the ``face_recognition_models`` package."""
    path = Path(str(importlib.resources.files("face_recognition_models") / "models" / name))
    if not path.is_file():
        raise TrackerError(f"face model file {path} is missing: reinstall face_recognition_models")
    return path


def _detection_scale(shape: tuple[int, ...], max_side: int | None) -> float:
    """Factor (<= 1) that brings an image of ``shape`` within ``max_side`` for detection."""
    longest = max(shape[0], shape[1])
    if max_side is None or longest <= max_side:
        return 1.0
    return max_side / longest


def _to_box(rect, scale: float, shape: tuple[int, ...]) -> Box:
    """dlib rectangle found at ``scale`` -> (top, right, bottom, left) clipped to the image."""
    h, w = shape[0], shape[1]
    top = min(max(round(rect.top() / scale), 0), h - 1)
    left = min(max(round(rect.left() / scale), 0), w - 1)
    bottom = min(max(round(rect.bottom() / scale), top), h - 1)
    right = min(max(round(rect.right() / scale), left), w - 1)
    return (top, right, bottom, left)


class FaceEmbedder(Extractor):
    """dlib HOG face detection + ResNet embeddings, one list of faces per image."""

    key = "faces"

    def __init__(self, upsample: int = DEFAULT_UPSAMPLE, detect_max_side: int | None = DEFAULT_DETECT_MAX_SIDE) -> None:
        super().__init__()
        if upsample < 0:
            raise TrackerError(f"face upsample must be 0 or more, not {upsample}")
        if detect_max_side is not None and detect_max_side < 64:
            raise TrackerError(f"face detection size must be at least 64 px, not {detect_max_side}")
        self.upsample = upsample
        self.detect_max_side = detect_max_side
        # dlib's DNN keeps state during a forward pass: one image at a time.
        self._run_lock = threading.Lock()

    def _load(self) -> None:
        import dlib  # imported here: listing targets must not need dlib

        self._detector = dlib.get_frontal_face_detector()
        self._shapes = dlib.shape_predictor(str(model_file(f"{SHAPE_MODEL}.dat")))
        self._encoder = dlib.face_recognition_model_v1(str(model_file(f"{RECOGNITION_MODEL}.dat")))
        self._rectangle = dlib.rectangle
        self._detections = dlib.full_object_detections

    @property
    def identity(self) -> dict:
        return {"model": RECOGNITION_MODEL, "detector": DETECTOR}

    def extract(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces (box + embedding) in each RGB uint8 image, in detector order."""
        self.load()
        with self._run_lock:
            return [self._faces(image) for image in images]

    def _faces(self, image: np.ndarray) -> list[DetectedFace]:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise TrackerError(f"face detection needs RGB uint8 images, got {image.dtype} array of shape {image.shape}")
        image = np.ascontiguousarray(image)
        scale = _detection_scale(image.shape, self.detect_max_side)
        small = image
        if scale < 1.0:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        boxes = [_to_box(rect, scale, image.shape) for rect in self._detector(small, self.upsample)]
        if not boxes:
            return []
        shapes = self._detections()
        for top, right, bottom, left in boxes:
            shapes.append(self._shapes(image, self._rectangle(left, top, right, bottom)))
        vectors = self._encoder.compute_face_descriptor(image, shapes, 1)
        return [DetectedFace(box=box, embedding=np.asarray(vec, dtype=np.float32)) for box, vec in zip(boxes, vectors, strict=True)]


class FaceTarget(Target):
    """A person, known by the embeddings of a few reference photos."""

    kind = "face"
    extractor_key = FaceEmbedder.key

    def __init__(
        self,
        name: str,
        gallery: np.ndarray,
        references: Sequence[str],
        tolerance: float = DEFAULT_TOLERANCE,
        rule: VerdictRule | None = None,
        embedder: dict | None = None,
        version: str = "",
        negatives: np.ndarray | None = None,
        negative_references: Sequence[str] = (),
    ) -> None:
        gallery = np.ascontiguousarray(gallery, dtype=np.float32)
        negatives = np.ascontiguousarray(np.zeros((0, EMBEDDING_SIZE)) if negatives is None else negatives, dtype=np.float32)
        if negatives.ndim != 2 or negatives.shape[1] != EMBEDDING_SIZE or len(negative_references) != len(negatives):
            raise ValueError(f"negative gallery must be (M, {EMBEDDING_SIZE}) with M names, got {negatives.shape}")
        if gallery.ndim != 2 or gallery.shape[0] == 0 or gallery.shape[1] != EMBEDDING_SIZE:
            raise ValueError(f"face gallery must be (K, {EMBEDDING_SIZE}) with K >= 1, got {gallery.shape}")
        if len(references) != gallery.shape[0]:
            raise ValueError(f"{len(references)} reference names for {gallery.shape[0]} gallery embeddings")
        if not 0 < tolerance < 1.5:
            raise TrackerError(f"face tolerance must be between 0 and 1.5, not {tolerance}")
        super().__init__(name, threshold=1.0 - tolerance, rule=rule or DEFAULT_FACE_RULE, version=version)
        self.gallery = gallery
        self.references = list(references)
        self.negatives = negatives
        self.negative_references = list(negative_references)
        self.tolerance = float(tolerance)
        self.embedder = dict(embedder or FaceEmbedder().identity)

    def check_extractor(self, extractor: Extractor) -> None:
        model = extractor.identity.get("model")
        if model != self.embedder.get("model"):
            raise BackboneMismatch(
                f"face target {self.name!r} was enrolled with {self.embedder.get('model')!r} embeddings, not {model!r}; enrol it again"
            )

    def distances(self, faces: Sequence[DetectedFace], gallery: np.ndarray | None = None) -> np.ndarray:
        """Distance of each face to its closest embedding in ``gallery`` (default: the enrolled one)."""
        gallery = self.gallery if gallery is None else gallery
        if not faces or len(gallery) == 0:
            return np.full(len(faces), np.inf, dtype=np.float32)
        vectors = np.stack([face.embedding for face in faces])
        pairwise = np.linalg.norm(vectors[:, None, :] - gallery[None, :, :], axis=2)
        return pairwise.min(axis=1)

    def counted_distances(self, faces: Sequence[DetectedFace]) -> np.ndarray:
        """``distances``, with faces nearer to a negative than to the gallery set to infinity (not counted)."""
        distances = self.distances(faces)
        if len(self.negatives):
            distances = np.where(distances < self.distances(faces, self.negatives), distances, np.inf)
        return distances

    def score(self, extracted: Sequence[list[DetectedFace]], indices: Sequence[int], timestamps: Sequence[float]) -> list[FrameScore]:
        """Per frame: ``max(0, 1 - distance)`` of the closest counted face, with its box."""
        scores = []
        for faces, index, timestamp in zip(extracted, indices, timestamps, strict=True):
            distances = self.counted_distances(faces)
            if not np.isfinite(distances).any():
                scores.append(FrameScore(index=index, timestamp=timestamp, score=0.0, box=None))
                continue
            best = int(distances.argmin())
            score = max(0.0, 1.0 - float(distances[best]))
            scores.append(FrameScore(index=index, timestamp=timestamp, score=score, box=faces[best].box))
        return scores

    def config(self) -> dict:
        config = {"tolerance": self.tolerance, "references": self.references, "embedder": self.embedder}
        if self.negative_references:
            config["negative_references"] = self.negative_references
        return config

    def save_artifacts(self, folder: Path) -> None:
        np.save(Path(folder) / GALLERY_FILE, self.gallery)
        if len(self.negatives):
            np.save(Path(folder) / NEGATIVES_FILE, self.negatives)

    @classmethod
    def from_bundle(cls, meta: dict, folder: Path) -> FaceTarget:
        negatives = Path(folder) / NEGATIVES_FILE
        return cls(
            name=meta["name"],
            gallery=np.load(Path(folder) / GALLERY_FILE, allow_pickle=False),
            references=meta["references"],
            tolerance=float(meta["tolerance"]),
            rule=VerdictRule.from_dict(meta["rule"]),
            embedder=meta["embedder"],
            version=meta.get("version", ""),
            negatives=np.load(negatives, allow_pickle=False) if negatives.is_file() else None,
            negative_references=meta.get("negative_references", []),
        )

    def with_corrections(
        self, positives: Sequence[tuple[str, np.ndarray]] = (), negatives: Sequence[tuple[str, np.ndarray]] = ()
    ) -> FaceTarget:
        """A copy with reviewed faces added: ``positives`` to the gallery, ``negatives`` to the
        negative gallery (each a (name, embedding) pair). Save it for a new version."""

        def grown(gallery, names, extra):
            if not extra:
                return gallery, list(names)
            return np.vstack([gallery, np.stack([e for _, e in extra])]), [*names, *(n for n, _ in extra)]

        gallery, references = grown(self.gallery, self.references, positives)
        negative_gallery, negative_references = grown(self.negatives, self.negative_references, negatives)
        return FaceTarget(
            self.name,
            gallery,
            references,
            self.tolerance,
            self.rule,
            self.embedder,
            negatives=negative_gallery,
            negative_references=negative_references,
        )

    def fingerprint(self) -> bytes:
        # A target without negatives keeps the version it had before negatives existed.
        return self.gallery.tobytes() + (self.negatives.tobytes() if len(self.negatives) else b"")


def reference_images(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Expand ``paths`` (files, or folders of images, sorted) into image files.

    Returns the files and a one-line problem for each path that gave none.
    """
    files: list[Path] = []
    problems: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = images_in(path)
            if not found:
                problems.append(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


def enroll_faces(
    name: str,
    photos: Sequence[Path],
    embedder: FaceEmbedder,
    tolerance: float = DEFAULT_TOLERANCE,
    rule: VerdictRule | None = None,
) -> tuple[FaceTarget, list[str]]:
    """A ``FaceTarget`` from reference photos (files or folders of images).

    Each photo must show exactly one face; photos with none, several, or that
    cannot be read are skipped and reported as one-line problems (the second
    return value). Raises ``NoFace`` when no photo is usable.
    """
    check_name(name)
    files, problems = reference_images(photos)
    embeddings: list[np.ndarray] = []
    references: list[str] = []
    for path in files:
        image = read_rgb(path)
        if image is None:
            problems.append(f"{path}: not a readable image")
            continue
        faces = embedder.extract([image])[0]
        if len(faces) != 1:
            what = "no face found" if not faces else f"{len(faces)} faces found"
            problems.append(f"{path}: {what}, need exactly one")
            continue
        embeddings.append(faces[0].embedding)
        references.append(path.name)
    if not embeddings:
        detail = "; ".join(problems) or "no photos given"
        raise NoFace(f"no usable reference photo for {name!r}: {detail}")
    target = FaceTarget(name, np.stack(embeddings), references, tolerance=tolerance, rule=rule, embedder=embedder.identity)
    return target, problems


@dataclass(frozen=True)
class FaceSettings:
    """The face kind's settings: the detector's upsampling, the default enrolment tolerance."""

    upsample: int = DEFAULT_UPSAMPLE
    tolerance: float = DEFAULT_TOLERANCE

    @classmethod
    def from_settings(cls, settings: Settings, overrides: Mapping[str, object] = {}) -> FaceSettings:
        return cls(upsample=settings.face_upsample, tolerance=settings.face_tolerance)


KIND = DetectorKind(
    key=FaceTarget.kind,
    target=FaceTarget,
    settings=FaceSettings.from_settings,
    extractor=lambda s: FaceEmbedder(upsample=s.upsample),
    # Faces are found and embedded at full resolution; stored as JPEG, distances move far less than the tolerance.
    view=FrameView(size=None, colour="rgb", encoding="jpeg"),
    corrected_by_marks=True,  # marked faces join the gallery or the negative gallery
    scores_distance=True,  # a frame's score is 1 - its distance to the gallery
)
