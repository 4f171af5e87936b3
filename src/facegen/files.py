"""Writing files so that a reader (or a crash) never sees half of one."""

from __future__ import annotations

import fcntl
import io
import os
import sys
from pathlib import Path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write to a temporary sibling (named after this process), flush and fsync it, then rename it into place:
    a reader, or the next run after a crash, sees the old file or the new one, never half of one. On any
    error the temporary file is removed and the old file is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_figure(fig, path: str | Path, **savefig) -> Path:
    """Save a matplotlib figure atomically, then close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=90, format="png", **savefig)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


class RunLock:
    """One training process per run directory: an exclusive flock on RUN/train.lock, holding the owner's PID.

    The kernel drops the lock when its process dies (even by SIGKILL), so a lock left by a dead process is
    simply taken over; its PID, still in the file, is named in a warning.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / "train.lock"
        self.file = None
        self.created = False

    def __enter__(self) -> RunLock:
        self.created = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            owner = self.file.read().strip() or "unknown"
            self.file.close()
            raise ValueError(f"{self.path.parent} is being trained by process {owner} (it holds {self.path}); "
                             "wait for it to finish or stop it, or train into another --out") from None
        self.file.seek(0)
        previous = self.file.read().strip()
        if previous:
            print(f"facegen: taking over the lock of process {previous}, which stopped without releasing {self.path}", file=sys.stderr)
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        self.file.seek(0)
        self.file.truncate()  # an empty file: released cleanly, nobody to warn about
        self.file.flush()
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
        if self.created and [p.name for p in self.path.parent.iterdir()] == [self.path.name]:
            self.path.unlink()  # a run refused before it wrote anything leaves no empty folder behind
            self.path.parent.rmdir()
