"""Scale out on Ray (`pip install "sbsconvert[cluster]"`): the jobs of a batch (photos, videos, and
the segments of long videos) run on Ray workers, one per GPU of the cluster, else one per CPU.

Each worker is a Ray actor that builds the engine and the depth model once and converts job after
job with the same functions a local run uses; the driver (this process) plans the jobs and the
segments, keeps the work folders and joins the segments, so a batch's outputs come out as a local
run writes them. It runs each job as a local run does (batch.run_job): it holds the job's lock while
the workers convert the job or its segments, so runs started together share the work. Outputs are
written by the workers straight to their paths: on several machines the input and output folders
must be on a file system they all share.

A worker that dies (killed, out of memory, its machine lost) is restarted by Ray and its task run
again; a segment that was finished stays finished (the work folder's manifest).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable


from sbsconvert.batch import BatchSummary, JobResult, Reporter, convert_guarded, run_job
from sbsconvert.errors import SbsError, first_line
from sbsconvert.jobs import Job
from sbsconvert.progress import progress as progress_counter

EXTRA = 'pip install "sbsconvert[cluster]"'
RETRIES = 3  # restarts of a dead worker, and re-runs of the task it held


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SbsError(f"`cluster` runs on Ray, which is not installed: {EXTRA}") from None
    return ray


def connect(address: str) -> bool:
    """Join the Ray cluster at `address`, or with 'auto' the one running on this machine (`ray start
    --head`), else start a local one. True when this process started it (and must shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=None if address == "auto" else address, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise SbsError(f"`cluster` {address}: cannot reach a Ray cluster ({first_line(error)})") from None
    return address == "auto"


def _worker_class(ray: Any) -> Any:
    @ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES)
    class ConvertWorker:
        """Builds the converters once (models load here, not per job) and runs jobs with them."""

        def __init__(self, setup: Callable[[], tuple[Any, Callable, Callable | None]]):
            _, self.photo, self.part = setup()

        def ready(self) -> None:
            """Returns once the worker is built (a failing set-up surfaces here)."""

        def convert(self, job: Job) -> JobResult:
            check_shared_files(job)
            return self._signed(convert_guarded(self.photo, job), job)

        def convert_part(self, job: Job, segment: Any) -> JobResult:
            assert self.part is not None
            check_shared_files(job, work_folder=segment is not None)  # else the outputs themselves
            return self._signed(convert_guarded(lambda part: self.part(part, segment), job), job)

        @staticmethod
        def _signed(result: JobResult, job: Job) -> JobResult:
            # For --verbose: which worker did what.
            where = f"worker {os.getpid()}@{socket.gethostname()}"
            result.details.append(f"{', '.join(path.name for path in job.outputs)}: converted by {where}")
            return result

    return ConvertWorker


def check_shared_files(job: Job, *, work_folder: bool = False) -> None:
    """Refuse, in one line, a job whose source (or, for a video's segment, whose work folder, made
    by the driver) this machine cannot see: a worker on another machine than the driver, without a
    file system the two share."""
    missing = job.source if not job.source.exists() else next(
        (path.parent for path in job.outputs if work_folder and not path.parent.is_dir()), None)
    if missing is not None:
        raise SbsError(f"{missing}: not found on worker machine {socket.gethostname()}; `cluster` across machines "
                       "needs the inputs and outputs on a file system every machine shares")


class WorkerPool:
    """Ray actors handed out one call at a time: a call waits for an idle worker, runs there and
    gives the worker back. Safe to use from many threads."""

    def __init__(self, ray: Any, setup: Callable, count: int | None):
        self.ray = ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        count = count or gpus or max(1, int(resources.get("CPU", 1)))
        worker = _worker_class(ray).options(num_gpus=1, num_cpus=0) if gpus else _worker_class(ray).options(num_cpus=1)
        self.actors = [worker.remote(setup) for _ in range(count)]
        try:
            ray.get([actor.ready.remote() for actor in self.actors])
        except ray.exceptions.RayActorError as error:
            cause = getattr(error, "cause", None) or getattr(error, "error_msg", error)
            raise SbsError(f"the workers could not start: {first_line(cause)}") from None
        self.idle: queue.Queue = queue.Queue()
        for actor in self.actors:
            self.idle.put(actor)

    def __len__(self) -> int:
        return len(self.actors)

    def call(self, method: str, *args: Any) -> Any:
        actor = self.idle.get()
        try:
            return self.ray.get(getattr(actor, method).remote(*args))
        except self.ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, (SbsError, KeyboardInterrupt)):
                raise cause from None
            raise SbsError(f"a worker failed: {first_line(cause or error)}") from None
        except self.ray.exceptions.RayActorError as error:
            raise SbsError(f"a worker was lost {RETRIES} times in a row: {first_line(error)}") from None
        except self.ray.exceptions.OutOfMemoryError:  # Ray's memory monitor stopped the worker
            raise SbsError(f"out of memory on a worker while converting {_source_of(args)}: its machine ran "
                           "short and Ray stopped the task; try a smaller input, fewer workers or close other "
                           "programs") from None
        finally:
            self.idle.put(actor)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)


def _source_of(args: tuple[Any, ...]) -> str:
    """The source file of a worker call's job (its first argument), for messages."""
    return str(args[0].source) if args and isinstance(args[0], Job) else "a job"


def run_on_cluster(
    address: str,
    workers: int | None,
    jobs: list[Job],
    setup: Callable[[], tuple[Any, Callable, Callable | None]],
    reporter: Reporter,
    *,
    is_video: Callable[[Job], bool],
    convert_video_job: Callable[..., JobResult] | None,
    skip_existing: bool,
) -> BatchSummary:
    """run_batch's work on Ray: jobs run concurrently, a video's segments spread over the workers.

    `setup()` runs in each worker and returns its (engine, convert photo, convert video part);
    `convert_video_job(job, convert_part, runner=...)` plans, resumes and joins a video here."""
    run_started = time.time()  # outputs written since are another run's (batch.run_job)
    ray = import_ray()
    started = connect(address)
    summary = BatchSummary()
    try:
        pool = WorkerPool(ray, setup, workers)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    begun = time.perf_counter()  # the batch, once the workers are up
    reporter.info(f"cluster: {len(pool)} workers")
    progress = progress_counter(len(jobs), desc="batch", unit="file", enabled=reporter.verbosity > 0)
    lock = threading.Lock()
    segment_threads = ThreadPoolExecutor(max_workers=4 * len(pool), thread_name_prefix="segment")

    def run_segments(job: Job, pending: list, finished: Callable[[Any, JobResult], None]) -> None:
        calls = {segment_threads.submit(pool.call, "convert_part", Job(job.source, segment.files), segment): segment
                 for segment in pending}
        for done in as_completed(calls):
            result = done.result()
            with lock:
                finished(calls[done], result)

    def convert(job: Job) -> JobResult:
        if convert_video_job is not None and is_video(job):
            return convert_video_job(job, lambda part, segment: pool.call("convert_part", part, segment),
                                     runner=run_segments)
        return pool.call("convert", job)

    job_threads = ThreadPoolExecutor(max_workers=len(pool), thread_name_prefix="job")
    try:
        waiting = [job_threads.submit(run_job, job, convert, reporter, skip_existing=skip_existing,
                                      run_started=run_started) for job in jobs]
        for done in as_completed(waiting):
            outcome = done.result()
            summary.outcomes.append(outcome)
            progress.update()
            if outcome.status == "failed" and outcome.stops_batch:
                summary.stopped = True
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        by_source = {job.source: number for number, job in enumerate(jobs)}
        summary.outcomes.sort(key=lambda outcome: by_source[outcome.source])  # as a local run lists them
        job_threads.shutdown(wait=False, cancel_futures=True)
        segment_threads.shutdown(wait=False, cancel_futures=True)
        progress.close()
        pool.close()
        if started:
            ray.shutdown()
        summary.seconds = time.perf_counter() - begun
    return summary
