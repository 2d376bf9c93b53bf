"""An exclusive lock on an output file, so that two runs never write the same output.

``sawdist extract`` and ``sawdist merge`` hold :class:`OutputLock` on their ``--out`` for the whole run: the file
``<out>.lock`` records who holds it (host, process id, start time, command) and is locked with ``flock(2)``, which
the kernel releases when the holding process ends in any way, SIGKILL included. So

* a second run on the same output is refused at once, with one line naming the holder;
* a lock left by a run that is gone is taken over, with a message (the pid it names is no longer running);
* the lock file is removed when the run ends.

``flock`` locks an open file, not a name: a run that removes the lock file as it ends could let a third run lock
the removed file while a fourth creates a new one. :meth:`OutputLock.acquire` therefore checks, once it holds the
lock, that the file it locked is still the one at the path (same inode), and starts again if not. On network file
systems ``flock`` is forwarded to the server's lock manager (NFS since Linux 2.6.12); where it is not supported at
all the lock falls back to creating the file exclusively (``O_EXCL``), and a lock of a dead process on this host is
taken over by its pid.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

__all__ = ["LockError", "OutputLock"]

log = logging.getLogger("sawdist.lock")

_MARK = "sawdist-lock"


class LockError(ValueError):
    """The output is locked by another run, or its lock file is not sawdist's."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


class OutputLock:
    """Exclusive lock on the output ``out`` (a context manager), held through the file ``<out>.lock``.

    Parameters
    ----------
    out : path-like
        The output file the run writes.
    what : str
        How messages name the output (default ``'out' '<path>'``).
    """

    def __init__(self, out: str | os.PathLike[str], *, what: str | None = None) -> None:
        self.out = Path(out)
        self.path = self.out.with_name(self.out.name + ".lock")
        self.what = what or f"'out' {str(self.out)!r}"
        self._fd: int | None = None

    # --- the holder's record --------------------------------------------------------------------------------------
    @staticmethod
    def _record() -> dict:
        return {_MARK: 1, "host": socket.gethostname(), "pid": os.getpid(),
                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv)}

    def _read(self, fd: int | None = None) -> dict | None:
        """The record in the lock file (None when empty); a file that is not a sawdist lock raises."""
        try:
            if fd is None:
                raw = self.path.read_bytes()
            else:
                os.lseek(fd, 0, os.SEEK_SET)
                raw = b"".join(iter(lambda: os.read(fd, 65536), b""))
        except FileNotFoundError:
            return None
        if not raw.strip():
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict) or _MARK not in record:
            raise LockError(f"{self.what} has a file {str(self.path)!r} that is not a sawdist lock; sawdist leaves it "
                            "as it is: move it away or choose another output file.")
        return record

    def _describe(self, record: dict | None) -> str:
        if not record:
            return "another run"
        return (f"process {record.get('pid')} on {record.get('host')} since {record.get('started')} "
                f"({record.get('command') or 'unknown command'})")

    # --- acquire and release ----------------------------------------------------------------------------------------
    def acquire(self) -> OutputLock:
        """Take the lock or raise :class:`LockError`."""
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except IsADirectoryError:
                raise LockError(f"{self.what} has a folder {str(self.path)!r} where its lock file goes; sawdist leaves "
                                "it as it is: move it away or choose another output file.") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record = self._read(fd)
                for _ in range(20):  # the holder may be between taking the lock and writing its record
                    if record:
                        break
                    time.sleep(0.05)
                    record = self._read(fd)
                os.close(fd)
                raise LockError(f"{self.what} is being written by {self._describe(record)}; wait for that run to "
                                f"finish, or give this one another output file.") from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    return self._acquire_exclusive()
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file as we locked it: lock the new one
                os.close(fd)
                continue
            try:
                previous = self._read(fd)
            except LockError:
                os.close(fd)
                raise
            if previous and previous.get("pid") != os.getpid():
                log.warning(f"taking over the lock of {self._describe(previous)}, which is no longer running")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(self._record()).encode())
            os.fsync(fd)
            self._fd = fd
            return self

    def _acquire_exclusive(self) -> OutputLock:
        """The lock where ``flock`` is not supported: create the file exclusively; take over a dead pid's."""
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                record = self._read()
                if (record and record.get("host") == socket.gethostname()
                        and not _pid_alive(int(record.get("pid", -1)))):
                    log.warning(f"taking over the lock of {self._describe(record)}, which is no longer running")
                    self.path.unlink(missing_ok=True)
                    continue
                raise LockError(f"{self.what} is being written by {self._describe(record)}; wait for that run to "
                                f"finish, or give this one another output file.") from None
            os.write(fd, json.dumps(self._record()).encode())
            os.fsync(fd)
            self._fd = fd
            return self
        raise LockError(f"{self.what}: could not take its lock {str(self.path)!r}; try again.")

    def release(self) -> None:
        """Remove the lock file and release the lock (removed first, while still held: see the module's notes)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
