"""Writing files so that a reader (or a crash) never sees half of one."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text to a temporary sibling, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def save_figure(fig, path: str | Path, **savefig) -> Path:
    """Save a matplotlib figure through a temporary sibling, then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90, **savefig)
    plt.close(fig)
    os.replace(tmp, path)
    return path


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
