"""Claim a job across processes, so that two runs on one folder share the work instead of both doing
all of it: a lock file beside the job's output, created atomically (O_CREAT | O_EXCL) and holding
the owner's process id and host. A lock whose process no longer runs on this host (killed) is taken
over; one from another host (a shared network folder) is left alone."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

from sbsconvert.errors import SbsError
from sbsconvert.output import process_alive

HOST = socket.gethostname()
TAKEOVER_TIMEOUT = 10.0  # seconds after which a takeover marker is itself stale


def lock_path(output: Path) -> Path:
    """The hidden lock file beside `output` (folder scans skip hidden files)."""
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def claim(output: Path) -> Iterator[str | None]:
    """Hold the lock of the job writing `output` for the duration of the block, and yield None; or
    yield who holds it ("pid 123" or "pid 123 on host") when another running process does."""
    path = lock_path(output)
    created = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    acquired = False
    try:
        try:
            with _ctrl_c_deferred():
                path.parent.mkdir(parents=True, exist_ok=True)
                holder = _acquire(path)
                acquired = holder is None
        except OSError as error:
            raise SbsError(f"cannot write to {path.parent}: {error.strerror or error}") from None
        yield holder
    finally:
        if acquired:
            with _ctrl_c_deferred():  # a Ctrl-C now would leave the lock behind
                _release(path)
                for folder in created:  # made for the lock alone when the job wrote nothing (it failed)
                    try:
                        folder.rmdir()
                    except OSError:
                        break


def clear_stale(output: Path) -> None:
    """Remove the lock beside a finished output when its owner is dead: killed after publishing the
    output and before giving the lock back, it would otherwise stay there for good (a rerun with
    --skip-existing never claims the job again)."""
    path = lock_path(output)
    holder = _read(path)
    if holder is not None and _dead_here(holder):
        _take_over(path, holder)


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold Ctrl-C back while the lock is created or removed: arriving between the creation and the
    moment we know we own it, or between reading and removing it, it would leave the lock behind. It
    is acted on as soon as the block ends. (A handler, not a signal mask: any of the process's
    threads may receive the signal.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs signal handlers in the main thread only
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)  # Python's default raises KeyboardInterrupt
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)


def _acquire(path: Path) -> str | None:
    """Create the lock, taking a dead process's over; None on success, else who holds it."""
    for _ in range(3):  # the lock may change hands between our looks
        if _create(path):
            return None
        holder = _read(path)
        if holder is None:
            continue  # released meanwhile
        if not _dead_here(holder):
            return _describe(holder)
        _take_over(path, holder)
    return _describe(_read(path))


def _dead_here(holder: tuple[int, str]) -> bool:
    """Whether a lock's owner is a process of this host that no longer runs (another host's cannot
    be checked, so it is taken as alive)."""
    pid, host = holder
    return host == HOST and (pid <= 0 or not process_alive(pid))  # os.kill(0, ...) would ask our own group


def _create(path: Path) -> bool:
    """Create the lock with its owner already written in it: the owner goes into a file of our own,
    which is then hard-linked as the lock (atomic, and failing when the lock exists). Created empty
    and written afterwards, a lock whose writer was killed in between would name nobody, and could
    not be told from one being written by a live process this very moment."""
    draft = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
    draft.write_text(f"{os.getpid()} {HOST}\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links (FAT, some network shares)
        return _create_in_place(path)
    finally:
        draft.unlink()
    return True


def _create_in_place(path: Path) -> bool:
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w") as lock:
        lock.write(f"{os.getpid()} {HOST}\n")
    return True


def _read(path: Path) -> tuple[int, str] | None:
    """(pid, host) of the lock's owner; None when there is no lock. An unreadable one (written in
    place on a file system without hard links, its writer died before writing it) reads as a dead
    process on this host."""
    try:
        text = path.read_text().split()
    except FileNotFoundError:
        return None
    if len(text) == 2 and text[0].isdigit():
        return int(text[0]), text[1]
    return 0, HOST


def _take_over(path: Path, stale: tuple[int, str]) -> None:
    """Remove a dead process's lock. Two processes may find it at once: a marker created with
    O_EXCL lets one of them do it, after checking the lock is still the dead one's (not a fresh
    lock the other has just made)."""
    marker = path.with_name(path.name + ".takeover")
    with contextlib.suppress(FileNotFoundError):
        if time.time() - marker.stat().st_mtime > TAKEOVER_TIMEOUT:
            marker.unlink()  # left by a process killed in the middle of a takeover
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return  # another process is taking it over
    try:
        if _read(path) == stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        marker.unlink()


def _release(path: Path) -> None:
    if _read(path) == (os.getpid(), HOST):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _describe(holder: tuple[int, str] | None) -> str:
    if holder is None:
        return "another process"
    pid, host = holder
    return f"pid {pid}" if host == HOST else f"pid {pid} on {host}"
