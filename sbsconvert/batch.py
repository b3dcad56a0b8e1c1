"""Run planned jobs one by one: skip finished ones, keep going past per-file errors, summarise.

Outputs are published atomically (see output.py), so an output that exists is complete: resuming an
interrupted batch is skipping jobs whose outputs all exist and writing only what is missing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from typing import Callable

from tqdm import tqdm

from sbsconvert.core import BatchSummary, Job, JobResult, Outcome, PassedOver
from sbsconvert.device import memory_guard
from sbsconvert.errors import BatchStop, SbsError
from sbsconvert.locks import claim, clear_stale
from sbsconvert.output import check_writable_target, write_failure
from sbsconvert.progress import progress

VERBOSITY = {"quiet": 0, "normal": 1, "verbose": 2}


class Reporter:
    """Messages on stderr, above any progress bar; errors always, the rest by verbosity."""

    def __init__(self, verbosity: int = 1):
        self.verbosity = verbosity

    def error(self, message: str) -> None:
        tqdm.write(f"error: {message}", file=sys.stderr)

    def info(self, message: str) -> None:
        if self.verbosity >= 1:
            tqdm.write(message, file=sys.stderr)

    def detail(self, message: str) -> None:
        if self.verbosity >= 2:
            tqdm.write(message, file=sys.stderr)


def is_finished(job: Job) -> bool:
    # A folder of frames (--frames-out) is never finished as a whole: it resumes frame by frame.
    return all(path.is_file() for path in job.outputs)


def check_targets(jobs: list[Job], force: bool, skip_existing: bool) -> None:
    """Refuse before any work when an output exists and neither --force nor --skip-existing allows it."""
    if skip_existing:
        return
    for job in jobs:
        for target in job.outputs:
            check_writable_target(target, force)


# Files named in a line saying why they were skipped, beyond which it gives a count (--verbose: all).
NAMED_SKIPS = 3


def report_passed_over(passed_over: list[PassedOver], reporter: Reporter) -> None:
    """One line per reason the folder scans gave, naming its files (a few, or all with --verbose)."""
    by_reason: dict[str, list[str]] = {}
    for skip in passed_over:
        by_reason.setdefault(skip.reason, []).append(str(skip.path))
    shown = NAMED_SKIPS if reporter.verbosity < 2 else None
    for reason, paths in by_reason.items():
        more = f" and {len(paths) - shown} more" if shown is not None and len(paths) > shown else ""
        reporter.info(f"skipped {', '.join(paths[:shown])}{more}: {reason}")


def check_output_folders(jobs: list[Job]) -> None:
    """Refuse before any work, in one line, when the folder the outputs go to cannot take files
    (read-only, no permission), rather than failing each file in turn with the same error."""
    folders = {target.parent for job in jobs for target in job.outputs}
    # Folders still to be made are made inside the nearest one that exists.
    existing = {next(folder for folder in (path, *path.parents) if folder.exists()) for path in folders}
    for folder in sorted(existing):
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise SbsError(f"cannot write to {folder}: {write_failure(error, folder)}") from None


def run_batch(
    jobs: list[Job],
    convert_one: Callable[[Job], JobResult],
    reporter: Reporter,
    *,
    skip_existing: bool,
    unit: str = "file",
) -> BatchSummary:
    """Convert each job with `convert_one`. SbsError (and running out of memory) fails just that job;
    BatchStop and Ctrl-C end the batch (the job in progress leaves no output), as the summary says.

    Each job is claimed with a lock file beside its output first, so runs started together on one
    folder share the work: a job another run holds, or has finished since this run started, is skipped."""
    summary = BatchSummary()
    started, wall_start = time.perf_counter(), time.time()
    bar = progress(len(jobs), desc="batch", unit=unit, enabled=reporter.verbosity > 0 and len(jobs) > 1)
    try:
        for job in jobs:
            bar.set_postfix_str(job.source.name, refresh=False)
            outcome = run_job(job, convert_one, reporter, skip_existing=skip_existing, run_started=wall_start)
            summary.outcomes.append(outcome)
            bar.update()
            if outcome.status == "failed" and outcome.stops_batch:
                summary.stopped = True
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - started
    return summary


def run_job(job: Job, convert_one: Callable[[Job], JobResult], reporter: Reporter, *, skip_existing: bool,
            run_started: float) -> Outcome:
    """One job of a batch, here or on a --cluster (whose `convert_one` hands the work to workers):
    skipped when finished (clearing a dead run's lock) or claimed by another run, else converted
    under its lock; an SbsError (running out of memory included) fails it. `run_started`: the
    batch's start (time.time()); outputs written since then are another run's."""
    if skip_existing and is_finished(job):
        clear_stale(job.outputs[0])
        reporter.detail(f"skipped {job.source}: outputs exist")
        return Outcome(job.source, job.outputs, "skipped", "outputs exist")
    job_started = time.perf_counter()
    try:
        with claim(job.outputs[0]) as holder:
            if holder is not None:
                reporter.info(f"skipped {job.source}: another sbsconvert ({holder}) is converting it")
                return Outcome(job.source, job.outputs, "skipped", f"another sbsconvert ({holder}) is converting it")
            if is_finished(job) and all(path.stat().st_mtime >= run_started for path in job.outputs):
                reporter.info(f"skipped {job.source}: another sbsconvert wrote it meanwhile")
                return Outcome(job.source, job.outputs, "skipped", "another sbsconvert wrote it meanwhile")
            result = convert_guarded(convert_one, job)
    except SbsError as error:
        reporter.error(str(error))
        return Outcome(job.source, job.outputs, "failed", str(error), stops_batch=isinstance(error, BatchStop))
    for note in result.notes:
        reporter.info(f"note: {note}")
    for detail in result.details:
        reporter.detail(detail)
    reporter.info(f"wrote {', '.join(str(path) for path in job.outputs)}")
    return Outcome(job.source, job.outputs, "converted", seconds=time.perf_counter() - job_started,
                   hole_fill=result.hole_fill, frames=result.frames, unet_calls=result.unet_calls)


def convert_guarded(convert_one: Callable[[Job], JobResult], job: Job) -> JobResult:
    """`convert_one(job)`, running out of memory turned into one line of advice. A --cluster worker
    runs its part of a job through it too: the error and the GPU memory to give back are there."""
    with memory_guard(f"converting {job.source}"):
        return convert_one(job)
