"""A saved target is a folder: ``target.json`` plus the kind's model files.

``target.json`` records the kind, name, version, threshold, verdict rule and
what the kind needs (for classifiers: backbone identity, input size, class
names, training metrics). The version is a hash of the learned state, so a
retrained or re-enrolled target gets a new version and old results are not
reused for it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from workers.detect.base import Target, check_name
from workers.detect.registry import kind_of
from workers.errors import BadTarget, TargetNotFound
from workers.verdict import VerdictRule

META = "target.json"


def bundle_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / check_name(name)


def save_target(target: Target, models_dir: Path, extra: dict | None = None) -> Path:
    """Write ``target`` as a bundle, replacing any previous one of that name atomically."""
    final = bundle_dir(models_dir, target.name)
    tmp = final.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    kind_of(target.kind).save_bundle(target, tmp)
    meta = {
        "kind": target.kind,
        "name": target.name,
        "threshold": target.threshold,
        "rule": target.rule.to_dict(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **target.config(),
        **(extra or {}),
    }
    digest = hashlib.sha256(target.fingerprint())
    digest.update(json.dumps({k: meta[k] for k in ("kind", "threshold", "rule")}, sort_keys=True).encode())
    meta["version"] = target.version = digest.hexdigest()[:12]
    (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def read_meta(folder: Path) -> dict:
    path = folder / META
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BadTarget(f"{folder}: not a target bundle (no {META})") from None
    except json.JSONDecodeError as exc:
        raise BadTarget(f"{path}: malformed JSON ({exc.msg})") from None


def target_meta(models_dir: Path, name: str) -> dict:
    """A saved target's ``target.json`` (cheap: no model is loaded)."""
    folder = bundle_dir(models_dir, name)
    if not folder.is_dir():
        known = ", ".join(list_targets(models_dir)) or "none saved yet"
        raise TargetNotFound(f"no target named {name!r} in {models_dir} (known: {known})")
    return read_meta(folder)


def load_target(models_dir: Path, name: str) -> Target:
    folder = bundle_dir(models_dir, name)
    meta = target_meta(models_dir, name)
    try:
        kind = kind_of(meta.get("kind", ""))
    except BadTarget as exc:
        raise BadTarget(f"{folder}: {exc}") from None
    try:
        target = kind.load_bundle(meta, folder)
    except (KeyError, ValueError, OSError) as exc:
        raise BadTarget(f"{folder}: damaged bundle ({exc})") from None
    target.version = meta.get("version", "")
    return target


SUMMARY_FIELDS = ("name", "kind", "version", "threshold", "rule", "created")


def summary(models_dir: Path, name: str) -> dict:
    """What ``target list`` shows of a bundle (cheap: no model is loaded), or
    ``{"name", "error"}`` when its ``target.json`` is unreadable or incomplete,
    so that one damaged bundle does not hide the others."""
    try:
        meta = read_meta(Path(models_dir) / name)
    except BadTarget as exc:
        return {"name": name, "error": str(exc)}
    return summary_of_meta(meta, name, Path(models_dir) / name / META)


def summary_of_meta(meta: dict, name: str, where: object) -> dict:
    """``summary`` of metadata already read (a published target's pointer carries it);
    ``where`` names its file in the error of a damaged one."""
    try:
        out = {k: meta.get(k) for k in SUMMARY_FIELDS}
        out["name"] = name
        out["threshold"] = float(out["threshold"])
        rule = rule_from_meta(meta)
        out["rule"] = {"min_frames": rule.min_frames, "min_fraction": rule.min_fraction}
        for key in ("kind", "version", "created"):
            out[key] = str(out[key] or "")
    except BadTarget as exc:
        return {"name": name, "error": f"{where}: {exc}"}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return {"name": name, "error": f"{where}: damaged ({type(exc).__name__}: {exc})"}
    return out


def list_targets(models_dir: Path) -> list[str]:
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / META).is_file() and not p.name.startswith("."))


def remove_target(models_dir: Path, name: str) -> None:
    folder = bundle_dir(models_dir, name)
    if not (folder / META).is_file():
        raise TargetNotFound(f"no target named {name!r} in {models_dir}")
    shutil.rmtree(folder)


def rule_from_meta(meta: dict) -> VerdictRule:
    return VerdictRule.from_dict(meta["rule"])
