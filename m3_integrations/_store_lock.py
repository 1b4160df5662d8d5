"""One process per embedded store: an advisory lock taken before the engine touches any file.

The embedded engines (Qdrant Edge shards, milvus-lite files) are not made for two processes. A second
Qdrant Edge opener even damages the first one's files before it reaches the engine's own WAL lock, so the
package takes its own lock first: ``fcntl.flock`` (Windows: ``msvcrt.locking``) on a lock file, with the
holder's pid written in it. The OS releases it when the holder dies, so a killed process never leaves a
stale lock behind.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOCK_NAME = ".m3-store.lock"
"""The lock file of a store that is a directory (Qdrant Edge), inside it."""

_POLL_SECONDS = 0.1


class StoreLockedError(RuntimeError):
    """The embedded store is open in another process (or by another open store object in this one).

    Attributes:
        path: the store's path.
        pid: the holder's pid, or ``None`` when it could not be read.
    """

    def __init__(self, path: str | Path, pid: int | None, waited: float, *, what: str = "store") -> None:
        self.path = str(path)
        self.pid = pid
        if pid is None:
            holder = "another process (pid unknown)"
        elif pid == os.getpid():
            holder = f"this process (pid {pid}), by another open {what} object"
        else:
            holder = f"another process (pid {pid})"
        waited_text = f" after waiting {waited:.1f} s" if waited > 0 else ""
        super().__init__(
            f"the {what} at {self.path!r} is open in {holder}{waited_text}. An embedded store takes one "
            "process at a time: close it there, wait for it (wait=SECONDS, or --wait SECONDS on the CLI), "
            "or use a database server for several processes"
        )


def check_wait(wait: Any) -> float:
    """``wait`` as seconds: a non-negative number (``math.inf``: wait as long as it takes)."""
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or math.isnan(wait) or wait < 0:
        raise ValueError(f"wait must be a number of seconds >= 0, got {wait!r}")
    return float(wait)


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without blocking; ``False`` if another open file holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _read_pid(lock_file: Path) -> int | None:
    try:
        text = lock_file.read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class StoreLock:
    """An exclusive advisory lock on ``lock_file`` for the store at ``store_path`` (see ``acquire``)."""

    def __init__(self, lock_file: Path, store_path: Path, what: str) -> None:
        self.lock_file = lock_file
        self.store_path = store_path
        self.what = what
        self._fd: int | None = None
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, wait: float = 0.0) -> StoreLock:
        """Take the lock, polling up to ``wait`` seconds; raises ``StoreLockedError`` naming the holder."""
        wait = check_wait(wait)
        with self._mutex:
            if self._fd is not None:
                return self
            start = time.monotonic()
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while not _try_lock(fd):
                    waited = time.monotonic() - start
                    if waited >= wait:
                        raise StoreLockedError(self.store_path, _read_pid(self.lock_file), waited if wait else 0.0,
                                               what=self.what)
                    time.sleep(min(_POLL_SECONDS, wait - waited))
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"{os.getpid()}\n".encode())
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self

    def release(self) -> None:
        """Release the lock (a no-op when it is not held). The pid stays in the file; it is only read while the
        lock is held by someone."""
        with self._mutex:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                _unlock(fd)
            finally:
                os.close(fd)


def acquire(store_path: str | Path, *, lock_file: str | Path | None = None, wait: float = 0.0,
            what: str = "store") -> StoreLock:
    """Lock the store at ``store_path`` for this object; ``lock_file`` defaults to ``LOCK_NAME`` inside it.

    Two objects of one process also exclude each other (``flock`` locks belong to an open file).
    """
    store_path = Path(store_path)
    lock = StoreLock(Path(lock_file) if lock_file is not None else store_path / LOCK_NAME, store_path, what)
    return lock.acquire(wait)


# ------------------------------------------------------------------------- shared within one process
_shared: dict[str, tuple[StoreLock, int]] = {}
_shared_mutex = threading.Lock()


def acquire_shared(store_path: str | Path, *, lock_file: str | Path, wait: float = 0.0, what: str = "store",
                   on_last_release: Callable[[], None] | None = None) -> Callable[[], None]:
    """Lock a store that several clients of this process may share (milvus-lite serves one file to all of a
    process's clients): the first one takes the lock, the last one to call the returned function runs
    ``on_last_release`` (e.g. stops the engine) and frees it."""
    wait = check_wait(wait)
    key = os.path.realpath(lock_file)
    start = time.monotonic()
    while True:
        with _shared_mutex:
            entry = _shared.get(key)
            if entry is not None:
                lock = entry[0]
                _shared[key] = (lock, entry[1] + 1)
                break
            try:
                lock = acquire(store_path, lock_file=lock_file, what=what)
            except StoreLockedError as exc:
                waited = time.monotonic() - start
                if waited >= wait:
                    if wait:
                        raise StoreLockedError(store_path, exc.pid, waited, what=what) from None
                    raise
            else:
                _shared[key] = (lock, 1)
                break
        time.sleep(min(_POLL_SECONDS, max(wait - waited, 0.0)))
    released = False

    def release() -> None:
        nonlocal released
        with _shared_mutex:
            if released:
                return
            released = True
            count = _shared[key][1]
            if count > 1:
                _shared[key] = (lock, count - 1)
                return
            del _shared[key]
            try:
                if on_last_release is not None:
                    on_last_release()
            finally:
                lock.release()

    return release
