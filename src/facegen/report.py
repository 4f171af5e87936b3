"""Plots and tables about runs: training curves now, side-by-side comparisons later."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training(metrics_path: str | Path, out: str | Path) -> Path | None:
    """Losses, mean D outputs and D accuracy against step, in one PNG (written atomically)."""
    records = read_metrics(metrics_path)
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    panels = [("loss", ("loss_d", "loss_g")), ("mean D output", ("d_real", "d_fake")), ("D accuracy", ("acc_real", "acc_fake"))]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            ax.plot(steps, [r[key] for r in records], label=key, linewidth=1)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, out)
    return out
