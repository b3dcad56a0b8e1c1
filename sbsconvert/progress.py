"""Progress on stderr: a tqdm bar on a terminal; in a log or a pipe (stderr is not a terminal), where
a bar's carriage returns pile up, a plain line every few seconds instead. A caller of the library
may also listen (`reported_to`): the counters of a job's own frames then tell it how far the job is."""

from __future__ import annotations

import contextlib
import sys
import time
from contextvars import ContextVar
from typing import Any, Callable, Iterator

from tqdm import tqdm

LOG_INTERVAL = 5.0  # seconds between two plain lines


# Told (share of the job done, 0-1) by the counters of a job's frames, in this thread and context.
_listener: ContextVar[Callable[[float], None] | None] = ContextVar("progress_listener", default=None)


@contextlib.contextmanager
def reported_to(listener: Callable[[float], None]) -> Iterator[None]:
    """While the block runs, counters made with `counts_job` tell `listener` the share of their
    job that is done (a video's frames written, over its frames to write)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def progress(total: int | None, *, desc: str, unit: str, enabled: bool = True, counts_job: bool = False) -> Any:
    """A counter to `update()` after each item and `close()` (or use as a context manager):
    a tqdm bar when stderr is a terminal, else a LogProgress. With `counts_job` (it counts a job's
    whole output), a listener set by `reported_to` hears each update too."""
    if enabled and sys.stderr.isatty():
        counter = tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)
    else:
        counter = LogProgress(total, desc=desc, unit=unit, enabled=enabled)
    listener = _listener.get()
    return Reported(counter, total, listener) if counts_job and listener is not None and total else counter


class Reported:
    """A counter that also tells a listener the share of its total done."""

    def __init__(self, counter: Any, total: int, listener: Callable[[float], None]):
        self.counter, self.total, self.listener, self.done = counter, total, listener, 0

    def update(self, count: int = 1) -> None:
        self.counter.update(count)
        self.done += count
        self.listener(min(1.0, self.done / self.total))

    def set_postfix_str(self, text: str, refresh: bool = False) -> None:
        self.counter.set_postfix_str(text, refresh=refresh)

    def close(self) -> None:
        self.counter.close()

    def __enter__(self) -> Reported:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LogProgress:
    """Writes "clip.mp4: 120/450 frames, 24.0 frames/s, 0:14 left" at most every `interval` seconds."""

    def __init__(self, total: int | None, *, desc: str, unit: str, enabled: bool = True,
                 interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 write: Callable[[str], None] | None = None):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.interval, self.clock = interval, clock
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.done = 0
        self.started = self.last = clock()
        self.postfix = ""

    def update(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if self.enabled and now - self.last >= self.interval:
            self.last = now
            self.write(self.line(now - self.started))

    def line(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        counted = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        text = f"{self.desc}: {counted} {self.unit}s, {rate:.1f} {self.unit}s/s"
        if self.total and rate > 0 and self.done < self.total:
            left = round((self.total - self.done) / rate)
            text += f", {left // 60}:{left % 60:02d} left"
        return f"{text} ({self.postfix})" if self.postfix else text

    def set_postfix_str(self, text: str, refresh: bool = False) -> None:
        """What is being worked on now (tqdm's name for it)."""
        self.postfix = text

    def close(self) -> None:
        """Nothing to clear: every line written is complete."""

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
