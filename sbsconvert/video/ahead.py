"""Run the stages of a stream in threads of their own, joined by bounded queues.

`Ahead(items)` iterates `items` in a worker thread, at most `depth` items ahead of whoever reads
it, so a slow stage never makes the stream pile up in memory. Stages chain: the next stage is a
generator reading an `Ahead`, wrapped in another `Ahead`. PyAV, OpenCV and torch release the GIL
while they work, so decoding, warping and encoding overlap on different cores.

Errors travel with the stream: an exception raised by a stage is re-raised where its items are
read, so the first failure reaches the main thread as it was. `stop()` ends every stage sharing
the same Event: it is called when the reader gives up (an error, Ctrl-C, the end)."""

from __future__ import annotations

import queue
import threading
from typing import Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
_POLL_S = 0.1  # blocking waits wake up this often to see whether the stream was stopped
_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Ahead(Generic[T]):
    """Iterate `items` in a daemon thread named `name`, up to `depth` items ahead."""

    def __init__(self, items: Iterable[T], name: str, stop: threading.Event, depth: int = 3):
        self._items = items
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = stop
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as error:  # handed to the reader, which re-raises it
            self._put(_Failure(error))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # a generator stopped early releases what it holds, here in its own thread

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stop.is_set() or not self._thread.is_alive() and self._queue.empty():
                    return  # stopped from elsewhere (its reader failed): nothing more will come
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker after the stream was stopped (it ends at its next item)."""
        self._thread.join(timeout)

