"""Progress on stderr: a tqdm bar on a terminal; in a log or a pipe (stderr is not a terminal), where
a bar's carriage returns pile up, a plain line every few seconds instead."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from tqdm import tqdm

LOG_INTERVAL = 5.0  # seconds between two plain lines


def progress(total: int | None, *, desc: str, unit: str, enabled: bool = True) -> Any:
    """A counter to `update()` after each item and `close()` (or use as a context manager):
    a tqdm bar when stderr is a terminal, else a LogProgress."""
    if enabled and sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)
    return LogProgress(total, desc=desc, unit=unit, enabled=enabled)


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
