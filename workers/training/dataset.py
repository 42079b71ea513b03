"""Labelled images for training a classifier target.

Two layouts: the tutorial's ``Image_ID,Class`` CSV beside an image folder, or
one sub-folder per class. Real datasets have holes (rows naming missing files,
images nobody labelled, unreadable files): those are reported and skipped,
and only a dataset that cannot train at all raises ``BadLabels``.

Near-duplicate frames of the same video sit next to each other in capture
order, so every example carries a *group*: a block of consecutive images in
natural (numeric-aware) name order. Validation splits by group, never by row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from workers.errors import BadLabels
from workers.images import images_in, natural_key


@dataclass(frozen=True)
class Example:
    path: Path
    label: int  # index into LabelledSet.class_names
    group: int


@dataclass
class LabelledSet:
    examples: list[Example]
    class_names: list[str]
    problems: list[str] = field(default_factory=list)  # one line per skipped input (or group of them)
    skipped: dict[str, int] = field(default_factory=dict)  # how many inputs were skipped, by reason

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in self.class_names}
        for ex in self.examples:
            out[self.class_names[ex.label]] += 1
        return out


def _group(paths_with_labels: list[tuple[Path, int]], block: int) -> list[Example]:
    ordered = sorted(paths_with_labels, key=lambda pl: natural_key(pl[0].name))
    return [Example(p, label, i // block) for i, (p, label) in enumerate(ordered)]


def _check_trainable(data: LabelledSet, source: str) -> LabelledSet:
    counts = data.counts()
    empty = [c for c, n in counts.items() if n == 0]
    skipped = f" ({len(data.problems)} problems, first: {data.problems[0]})" if data.problems else ""
    if not data.examples:
        raise BadLabels(f"{source}: no usable labelled images{skipped}")
    if len(counts) < 2 or empty:
        raise BadLabels(f"{source}: need examples of at least two classes, got {counts}{skipped}")
    return data


def load_csv(labels: Path, images: Path, block: int = 20) -> LabelledSet:
    """The tutorial's layout: ``Image_ID,Class`` rows naming files in ``images``."""
    labels, images = Path(labels), Path(images)
    if not labels.is_file():
        raise BadLabels(f"labels file not found: {labels}")
    if not images.is_dir():
        raise BadLabels(f"image folder not found: {images}")
    problems: list[str] = []
    bad_rows = 0
    rows: dict[str, str] = {}
    with labels.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if "Image_ID" not in fields or "Class" not in fields:
            raise BadLabels(f"{labels}: expected columns Image_ID,Class, found {','.join(fields) or 'none'}")
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            name, cls = row.get("Image_ID", ""), row.get("Class", "")
            if not name or not cls:
                problems.append(f"{labels.name}:{line}: empty Image_ID or Class, row skipped")
                bad_rows += 1
                continue
            if Path(name).name != name:
                problems.append(f"{labels.name}:{line}: {name!r} is not a plain file name, row skipped")
                bad_rows += 1
                continue
            if name in rows and rows[name] != cls:
                problems.append(f"{labels.name}:{line}: {name} labelled twice ({rows[name]}, {cls}), kept first")
                bad_rows += 1
                continue
            rows[name] = cls
    class_names = sorted(set(rows.values()), key=natural_key)
    index = {c: i for i, c in enumerate(class_names)}
    found: list[tuple[Path, int]] = []
    missing = 0
    for name, cls in rows.items():
        path = images / name
        if not path.is_file():
            problems.append(f"{name}: listed in {labels.name} but missing from {images}, skipped")
            missing += 1
            continue
        found.append((path, index[cls]))
    unlabelled = [p.name for p in images_in(images) if p.name not in rows]
    if unlabelled:
        shown = ", ".join(unlabelled[:5]) + (" ..." if len(unlabelled) > 5 else "")
        problems.append(f"{len(unlabelled)} images in {images} have no label, skipped: {shown}")
    skipped = {"bad rows": bad_rows, "missing": missing, "unlabelled": len(unlabelled)}
    data = LabelledSet(_group(found, block), class_names, problems, skipped)
    return _check_trainable(data, str(labels))


def load_folders(root: Path, block: int = 20) -> LabelledSet:
    """One sub-folder per class (``root/trump/*.jpg``, ``root/other/*.jpg``)."""
    root = Path(root)
    if not root.is_dir():
        raise BadLabels(f"image folder not found: {root}")
    classes = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: natural_key(d.name))
    if not classes:
        raise BadLabels(f"{root}: no class sub-folders; use one folder per class or --labels CSV")
    problems = []
    stray = [p.name for p in images_in(root)]
    if stray:
        problems.append(f"{len(stray)} images directly in {root} have no class folder, skipped")
    examples: list[Example] = []
    for label, folder in enumerate(classes):
        # Groups are numbered per class, offset so that classes never share one.
        for ex in _group([(p, label) for p in images_in(folder)], block):
            examples.append(Example(ex.path, label, ex.group + label * 1_000_000))
    data = LabelledSet(examples, [d.name for d in classes], problems, {"unlabelled": len(stray)})
    return _check_trainable(data, str(root))


def positive_class(class_names: list[str], target_name: str, requested: str | None = None) -> int:
    """Index of the class the target looks for."""
    if requested is not None:
        if requested not in class_names:
            raise BadLabels(f"positive class {requested!r} not among classes {class_names}")
        return class_names.index(requested)
    for candidate in ("1", "positive", "target", "yes", target_name):
        for i, c in enumerate(class_names):
            if c.lower() == candidate.lower():
                return i
    if len(class_names) == 2:
        negatives = {"0", "negative", "other", "none", "no", "background"}
        rest = [i for i, c in enumerate(class_names) if c.lower() not in negatives]
        if len(rest) == 1:
            return rest[0]
    raise BadLabels(f"cannot tell which class is the target among {class_names}: pass --positive-class")
