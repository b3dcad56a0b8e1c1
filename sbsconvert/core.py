"""The plain records every stage passes around (a job, its result, a batch's summary, stage
timings). They sit at the ground floor and import nothing of sbsconvert, so any layer can use them
without reaching up the flow (decode -> disparity -> engine -> layout -> encode)."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass
class Job:
    source: Path
    outputs: list[Path]  # one file, or left and right for lr-pair


@dataclass
class PassedOver:
    """A file (or, without --recursive, a sub-folder) a folder scan does not convert, and why."""

    path: Path
    reason: str


def natural_key(path: Path) -> list[object]:
    """Sort key that puts frame2 before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


@dataclass
class JobResult:
    notes: list[str] = field(default_factory=list)  # worth telling every user
    details: list[str] = field(default_factory=list)  # for --verbose: sources used, time per stage
    hole_fill: dict[str, int] = field(default_factory=dict)  # the plate: hole pixels by what filled them
    frames: int = 0  # video frames written
    unet_calls: int | None = None  # the diffusion engine's UNet evaluations (None: no diffusion)

    def add_part(self, part: JobResult) -> None:
        """Count in a part's (a segment's) frames, hole pixels and UNet evaluations."""
        for source, pixels in part.hole_fill.items():
            self.hole_fill[source] = self.hole_fill.get(source, 0) + pixels
        self.frames += part.frames
        if part.unet_calls is not None:
            self.unet_calls = (self.unet_calls or 0) + part.unet_calls


@dataclass
class Outcome:
    source: Path
    outputs: list[Path]
    status: str  # "converted", "skipped" or "failed"
    message: str = ""
    seconds: float = 0.0
    stops_batch: bool = False  # a failure every remaining job would hit too (BatchStop)
    hole_fill: dict[str, int] = field(default_factory=dict)  # JobResult.hole_fill
    frames: int = 0  # JobResult.frames
    unet_calls: int | None = None  # JobResult.unet_calls

    def as_dict(self) -> dict[str, object]:
        # Only outputs that are there: a failed job's were never written (lr-pair: maybe one eye).
        entry: dict[str, object] = {"input": str(self.source),
                                    "outputs": [str(path) for path in self.outputs if path.exists()]}
        if self.message:
            entry["error" if self.status == "failed" else "note"] = self.message
        if self.status == "converted":
            entry["seconds"] = round(self.seconds, 3)
        if self.hole_fill:  # the plate: hole pixels by what filled them, and each one's share
            total = max(1, sum(self.hole_fill.values()))
            entry["hole_fill"] = {**self.hole_fill, **{f"{source}_share": round(pixels / total, 4)
                                                       for source, pixels in self.hole_fill.items()}}
        if self.unet_calls is not None:
            entry["unet_calls"] = {"total": self.unet_calls, "per_frame": round(self.unet_calls / max(1, self.frames), 2)}
        return entry


@dataclass
class BatchSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    stopped: bool = False  # a problem every remaining job would hit ended the batch early
    refused: str | None = None  # why the run was refused before any job started

    def with_status(self, status: str) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status == status]

    def line(self) -> str:
        counts = ", ".join(f"{len(self.with_status(status))} {status}" for status in ("converted", "skipped", "failed"))
        state = "interrupted" if self.interrupted else "stopped" if self.stopped else "done"
        return f"{state}: {counts}, in {self.seconds:.1f} s"

    def add_passed_over(self, passed_over: list[PassedOver]) -> None:
        """Count the files folder scans left out as skipped, each with its reason (first: found first)."""
        self.outcomes[:0] = [Outcome(skip.path, [], "skipped", skip.reason) for skip in passed_over]

    def as_json(self) -> dict[str, object]:
        return {
            "converted": [outcome.as_dict() for outcome in self.with_status("converted")],
            "skipped": [outcome.as_dict() for outcome in self.with_status("skipped")],
            "failed": [outcome.as_dict() for outcome in self.with_status("failed")],
            "interrupted": self.interrupted,
            "stopped": self.stopped,
            "refused": self.refused,
            "seconds": round(self.seconds, 3),
        }


class StageTimer:
    """Wall time per named stage, printed as "decode 0.01 s, warp 0.20 s, ..."."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def add(self, other: StageTimer) -> None:
        for stage, seconds in other.seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def __str__(self) -> str:
        return ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in self.seconds.items())
