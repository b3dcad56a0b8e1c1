"""The conversion queue: jobs kept in a JSON file in the state folder (so the queue outlives the
page and the server), run one at a time by a worker thread. Each job is the library's
StereoConverter.convert in a child process: cancelling sends it Ctrl-C (SIGINT), which the
library answers as on the command line (finished outputs complete, unfinished ones not written),
and a crash cannot take the server down."""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any

ACTIVE = ("queued", "running")


def convert_in_child(preset: str | None, values: dict[str, Any], inputs: list[str], output: str,
                     events: Any) -> None:
    """The child process: one library conversion, reporting ("converting",) once the library is
    loaded, ("progress", done, total) after each file and, for a video, in steps of a hundredth of
    it (done then counts the share of its frames written: a frame at a time would be a message per
    frame), then ("done", summary) or ("refused", message)."""
    try:
        from sbsconvert import StereoConverter
        from sbsconvert.errors import SbsError

        converter = StereoConverter(preset=preset, **values)
        events.put(("converting",))
        told = -1.0

        def tell(done: float, total: int) -> None:
            nonlocal told
            if done == int(done) or done - told >= 0.01:
                told = done
                events.put(("progress", done, total))

        summary = converter.convert(inputs, output, progress=tell)
    except SbsError as error:
        events.put(("refused", str(error)))
        return
    except KeyboardInterrupt:  # cancelled while loading, before any conversion
        return
    events.put(("done", summary.as_json()))


class JobQueue:
    def __init__(self, state: Path, output_folder: Path, base_values: dict[str, Any]):
        self.path = state / "jobs.json"
        self.output_folder = output_folder
        self.base_values = base_values  # the server's own settings (disparity maps, device)
        self.version = 0  # bumped on every change, for the event stream
        self._lock = threading.Condition()
        self._jobs: list[dict[str, Any]] = json.loads(self.path.read_text()) if self.path.exists() else []
        for job in self._jobs:
            if job["status"] == "running":  # the server stopped during it: run it again, it resumes
                job["status"] = "queued"
        self._stopping = False
        self._child: Any = None
        self._thread: threading.Thread | None = None

    # --- requests -------------------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(self._jobs))

    def add(self, inputs: list[dict[str, str]], paths: list[Path], options: dict[str, Any]) -> dict[str, Any]:
        job = {"id": secrets.token_hex(6), "created": time.time(), "inputs": inputs, "sources": [str(p) for p in paths],
               "options": options, "status": "queued", "done": 0, "total": len(paths), "message": "", "outputs": []}
        with self._lock:
            self._jobs.append(job)
            self._changed()
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._find(job_id)
            if job["status"] == "queued":
                job.update(status="cancelled", message="cancelled before it started")
            elif job["status"] == "running":
                job["cancel"] = True
                if self._child is not None and self._child.pid:
                    os.kill(self._child.pid, signal.SIGINT)
            self._changed()
            return dict(job)

    def remove(self, job_id: str) -> None:
        with self._lock:
            job = self._find(job_id)
            if job["status"] in ACTIVE:
                raise ValueError("cancel the job before removing it")
            self._jobs.remove(job)
            self._changed()

    def wait_change(self, version: int, timeout: float) -> int:
        with self._lock:
            self._lock.wait_for(lambda: self.version != version or self._stopping, timeout)
            return self.version

    # --- worker ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="sbsconvert-serve-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker; a running job is interrupted and stays queued (it resumes next start)."""
        with self._lock:
            self._stopping = True
            if self._child is not None and self._child.pid:
                os.kill(self._child.pid, signal.SIGINT)
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._stopping or any(job["status"] == "queued" for job in self._jobs))
                if self._stopping:
                    return
                job = next(job for job in self._jobs if job["status"] == "queued")
                job.update(status="running", started=time.time())
                self._changed()
            self._run(job)

    def _run(self, job: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")
        events = context.Queue()
        output = self.output_folder / job["id"]
        output.mkdir(exist_ok=True)
        options = dict(job["options"])
        preset = options.pop("preset", None)
        # skip_existing: a job run again after a restart keeps what it finished (videos resume).
        values = {**self.base_values, **options, "skip_existing": True, "verbosity": 0}
        child = context.Process(target=convert_in_child, args=(preset, values, job["sources"], str(output), events),
                                daemon=True)
        with self._lock:
            if self._stopping:
                job["status"] = "queued"
                return
            child.start()
            self._child = child
        result: tuple | None = None
        while result is None:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if not child.is_alive():
                    break
                continue
            if event[0] in ("progress", "converting"):
                with self._lock:
                    job.update(converting=True, **dict(zip(("done", "total"), event[1:])))
                    self._changed(save=False)  # how far a running job is: shown, not worth a write
            else:
                result = event
        child.join()
        with self._lock:
            self._child = None
            self._finish(job, result, child.exitcode)
            self._changed()

    def _finish(self, job: dict[str, Any], result: tuple | None, exitcode: int | None) -> None:
        job["finished"] = time.time()
        if result is not None and result[0] == "done":
            summary = result[1]
            job["outputs"] = [path for key in ("converted", "skipped") for item in summary[key]
                              for path in item["outputs"]]
            failed = [f"{Path(item['input']).name}: {item['error']}" for item in summary["failed"]]
            if summary.get("interrupted"):
                if self._stopping and not job.get("cancel"):
                    job.update(status="queued", message="the server stopped during it; it resumes")
                    return
                job.update(status="cancelled", message="cancelled: finished outputs are complete")
            else:
                job.update(status="failed" if failed else "done", message="; ".join(failed))
        elif result is not None:
            job.update(status="failed", message=result[1])
        elif self._stopping and not job.get("cancel"):
            job.update(status="queued", message="the server stopped during it; it resumes")
        elif job.get("cancel"):
            job.update(status="cancelled", message="cancelled")
        else:
            job.update(status="failed", message=f"the conversion process ended unexpectedly (exit code {exitcode})")
        job.pop("cancel", None)
        job.pop("converting", None)

    def _find(self, job_id: str) -> dict[str, Any]:
        for job in self._jobs:
            if job["id"] == job_id:
                return job
        raise KeyError(job_id)

    def _changed(self, save: bool = True) -> None:
        """Save the queue (temp file + rename: never a half-written state) and wake the watchers.
        Progress alone is not saved: a job found running after a restart is run again anyway."""
        self.version += 1
        if save:
            partial = self.path.with_suffix(".part")
            partial.write_text(json.dumps(self._jobs, indent=1))
            partial.replace(self.path)
        self._lock.notify_all()

