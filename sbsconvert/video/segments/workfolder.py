"""The work folder beside a segmented run's output: the segments' files and a manifest (the source's
identity, the settings' hash, each segment's status) that lets a later run resume the unfinished ones."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

from sbsconvert.core import Job
from sbsconvert.errors import SbsError
from sbsconvert.output import atomic_path
from sbsconvert.video.segments.plan import Segment

MANIFEST_VERSION = 1
_HASHED_BYTES = 1 << 20  # head and tail of the source that identify it (with its size and mtime)


def source_identity(source: Path) -> dict[str, object]:
    """Size, modification time and a hash of the head and tail: changes when the source does."""
    if source.is_dir():
        entries = sorted((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in source.iterdir())
        return {"folder": hashlib.sha256(json.dumps(entries).encode()).hexdigest()}
    stat = source.stat()
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        digest.update(handle.read(_HASHED_BYTES))
        handle.seek(max(0, stat.st_size - _HASHED_BYTES))
        digest.update(handle.read(_HASHED_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}


def settings_hash(fingerprint: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def work_folder(job: Job) -> Path:
    """Beside the (first) output, hidden: .NAME_LR.mp4.segments/"""
    target = job.outputs[0]
    return target.parent / f".{target.name}.segments"


class WorkFolder:
    """The work folder of one job: segment files and manifest.json (source identity, settings hash,
    segments with their status). Every write is atomic, so a kill at any moment leaves it readable."""

    def __init__(self, path: Path, manifest: dict[str, object]):
        self.path = path
        self.manifest = manifest

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @classmethod
    def open(cls, job: Job, segments: list[Segment], fingerprint: dict[str, object], *, resume: bool,
             report: Callable[[str], None]) -> WorkFolder:
        """The job's work folder, resumed when its manifest matches this source, these settings and
        this plan; otherwise started afresh (saying why when an old one is dropped)."""
        path = work_folder(job)
        manifest = {
            "version": MANIFEST_VERSION,
            "source": str(job.source),
            "identity": source_identity(job.source),
            "settings": settings_hash(fingerprint),
            "segments": [{"frames": len(segment.frames), "first": segment.frames[0], "done": False} for segment in segments],
        }
        old = _read_manifest(path / "manifest.json")
        if old is not None:
            same_plan = [(s["frames"], s["first"]) for s in old.get("segments", [])] == \
                        [(s["frames"], s["first"]) for s in manifest["segments"]]
            why = ("--no-resume was given" if not resume
                   else "the source changed" if old.get("identity") != manifest["identity"]
                   else "the settings changed" if old.get("settings") != manifest["settings"] or not same_plan
                   else None)
            if why is None:
                manifest["segments"] = old["segments"]
                if "shot_starts" in old:
                    manifest["shot_starts"] = old["shot_starts"]
                done = sum(1 for entry in old["segments"] if entry["done"])
                report(f"{job.source.name}: resuming, {done} of {len(segments)} segments already done")
            else:
                report(f"{job.source.name}: starting over, {why} since the unfinished run in {path}")
        if old is None or manifest["segments"] is not old["segments"]:
            shutil.rmtree(path, ignore_errors=True)
        folder = cls(path, manifest)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SbsError(f"cannot write to {path.parent}: {error.strerror or error}") from None
        folder.save()
        return folder

    def assign_files(self, segment: Segment, job: Job, frames_out: bool) -> None:
        segment.files = [self.path / f"{segment.number:05d}.{eye}{'' if frames_out else '.npz'}"
                         for eye in range(len(job.outputs))]

    def is_done(self, segment: Segment) -> bool:
        entry = self.manifest["segments"][segment.number]  # type: ignore[index]
        return bool(entry["done"]) and all(path.exists() for path in segment.files)

    def mark_done(self, segment: Segment) -> None:
        self.manifest["segments"][segment.number]["done"] = True  # type: ignore[index]
        self.save()

    def save(self) -> None:
        with atomic_path(self.manifest_path, force=True) as temp:
            temp.write_text(json.dumps(self.manifest, indent=1))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _read_manifest(path: Path) -> dict | None:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("version") == MANIFEST_VERSION else None
