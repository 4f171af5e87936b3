"""Plots and tables about runs: one run's training curves, and a side-by-side comparison of several.

`compare_runs` writes a static HTML page next to the PNGs it links (relative links, no JavaScript):
quality figures from each run's eval.json, the config keys that differ, sample grids from the same
seeds, and the training curves of every run overlaid.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from facegen.files import save_figure, write_text_atomic

ALWAYS_SHOWN = ("model.family", "data.resolution")  # the facts a reader needs even when they agree
# eval.json key, column title, whether lower is better.
QUALITY = (("fid", "FID", True), ("kid", "KID", True), ("precision", "precision", False),
           ("recall", "recall", False), ("is", "IS", False))
QUALITY += (("gmm_fid", "FID (GMM prior)", True), ("gmm_kid", "KID (GMM prior)", True),
            ("recon_mse", "recon MSE", True), ("recon_psnr", "recon PSNR", False), ("recon_fid", "recon FID", True))
OPTIONAL_QUALITY = ("is", "gmm_fid", "gmm_kid", "recon_mse", "recon_psnr", "recon_fid")  # shown only when some run has it
EXTRA_EVALUATIONS = (("eval-gmm.json", "gmm_"), ("eval-reconstructions.json", "recon_"))  # file, column prefix
# Overlaid curves of the compare page, each drawn when some run logged its keys.
OVERLAYS = ((("loss_d", "loss_g"), "GAN losses", "loss", "curves-loss.png"),
            (("d_real", "d_fake"), "mean D output (sigmoid of logits)", "D(x)", "curves-d.png"),
            (("recon",), "reconstruction error (per image)", "error", "curves-recon.png"),
            (("kl",), "KL divergence (per image)", "nats", "curves-kl.png"),
            (("kid",), "KID during training (quick checks)", "KID", "curves-kid.png"),
            (("ada_p",), "adaptive augmentation probability", "p", "curves-ada.png"))
# Panels of training.png, each drawn when the run logged any of its keys (GANs, VAEs and VAE-GANs log different ones).
TRAINING_PANELS = (("GAN loss", ("loss_d", "loss_g")), ("mean D output", ("d_real", "d_fake")),
                   ("D accuracy", ("acc_real", "acc_fake")), ("reconstruction error", ("recon",)), ("KL", ("kl",)),
                   ("KID (quick check)", ("kid",)), ("adaptive augmentation", ("ada_p", "ada_rt")))


def read_metrics(path: str | Path) -> list[dict]:
    """metrics.jsonl's records; a line torn by a kill in mid-append (only ever the last) is left out."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _series(records: list[dict], key: str) -> tuple[list, list]:
    """Steps and values of the records that carry `key` (quick KID checks log only {step, kid})."""
    kept = [r for r in records if r.get(key) is not None and "step" in r]
    return [r["step"] for r in kept], [r[key] for r in kept]


def plot_training(metrics_path: str | Path, out: str | Path) -> Path | None:
    """Losses, mean D outputs, D accuracy (and KID checks, if any) against step, in one PNG (written atomically)."""
    records = read_metrics(metrics_path)
    panels = [(title, keys) for title, keys in TRAINING_PANELS if any(_series(records, key)[0] for key in keys)]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(13 / 3 * len(panels), 3.4), squeeze=False)
    axes = axes[0]
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            ax.plot(*_series(records, key), label=key, linewidth=1, marker="o" if key == "kid" else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, Path(out))


class TensorBoard:
    """metrics.jsonl's records and the preview grids, also as TensorBoard events in the run directory.

    tensorboardX writes them with numpy and protobuf alone; torch.utils.tensorboard would need the whole
    `tensorboard` package (a web server and its dependencies) just to write files.
    """

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ValueError("train.tensorboard = true needs tensorboardX: pip install 'facegen[tensorboard]' "
                             "(or set train.tensorboard=false)") from None
        # purge_step: a resumed run redoes the steps after its checkpoint; TensorBoard drops the old ones.
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)

    def scalars(self, record: dict) -> None:
        for key, value in record.items():
            if key not in ("step", "epoch") and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, record["step"])

    def images(self, grids: dict[str, np.ndarray], step: int) -> None:
        for tag, grid in grids.items():  # uint8 HWC
            self.writer.add_image(tag, grid, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


# Comparing runs.


@dataclass
class Run:
    name: str  # unique among the compared runs
    path: Path
    config: dict[str, object]  # flattened: 'section.key' -> value
    records: list[dict]
    evaluation: dict | None
    checkpoint: Path

    @property
    def slug(self) -> str:
        """The name made safe for a file name and a URL."""
        return re.sub(r"[^A-Za-z0-9._-]", "_", self.name)


def flatten_config(tree: dict) -> dict[str, object]:
    """{'train': {'lr_g': 2e-4}} -> {'train.lr_g': 2e-4}."""
    flat: dict[str, object] = {}
    for section, values in tree.items():
        if isinstance(values, dict):
            flat.update({f"{section}.{key}": value for key, value in values.items()})
        else:
            flat[section] = values
    return flat


def _open_run(path: Path, name: str) -> Run:
    from facegen import checkpoint as ckpt

    config_path = path / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{path} is not a facegen run (no config.json); pass the --out directory of a facegen train")
    newest = ckpt.latest(path)
    if newest is None:
        raise ValueError(f"run {path} has no checkpoints yet (looked in {path / 'checkpoints'}); train it longer or leave it out")
    evaluation = read_evaluation(path / "eval.json")
    for file_name, prefix in EXTRA_EVALUATIONS:  # an encoder model's GMM-prior and reconstruction scores, as extra columns
        extra = read_evaluation(path / file_name)
        if extra is not None:
            evaluation = {**(evaluation or {}), **{prefix + k: extra[k] for k in ("fid", "kid", "kid_std", "mse", "psnr") if k in extra}}
    config = flatten_config(json.loads(config_path.read_text()))
    return Run(name, path, config, read_metrics(path / "metrics.jsonl"), evaluation, newest)


def find_runs(folder: str | Path) -> list[Path]:
    """Run directories (those with a config.json and a checkpoint) under a folder, itself included, sorted."""
    from facegen import checkpoint as ckpt

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; pass the folder that holds your runs, e.g. runs")
    return sorted(p.parent for p in folder.rglob("config.json") if ckpt.latest(p.parent) is not None)


RUN_COLUMNS = ("run", "preset", "family", "settings", "steps", "seconds", "img_per_s", "loss_d", "loss_g", "recon", "kl", "ada_p",
               "fid", "kid", "kid_std")  # the keys of runs_table's rows


def runs_table(folder: str | Path) -> list[dict]:
    """One row per run under a folder: preset, the settings that differ between the runs, steps, wall time,
    img/s, final losses and the evaluation's FID/KID (None where a run has none)."""
    from facegen import checkpoint as ckpt

    folder = Path(folder)
    paths = find_runs(folder)
    opened = [_open_run(p, str(p.relative_to(folder)) if p != folder else p.name) for p in paths]
    differ = [k for k in config_differences(opened) if k not in ALWAYS_SHOWN or len({json.dumps(r.config.get(k)) for r in opened}) > 1]
    rows = []
    for run in opened:
        info = run_info(run.path)
        state = ckpt.read_state(run.checkpoint)
        last = next((r for r in reversed(run.records) if "loss_d" in r or "recon" in r), {})
        seconds = state.get("train_seconds")
        images = state.get("step", 0) * int(run.config.get("train.batch_size", 0) or 0)
        evaluation = run.evaluation or {}
        rows.append({
            "run": run.name, "preset": info.get("preset"), "family": run.config.get("model.family"),
            "settings": {k: run.config.get(k) for k in differ}, "steps": state.get("step"),
            "seconds": round(seconds, 1) if seconds else None, "img_per_s": round(images / seconds, 1) if seconds else None,
            **{key: last.get(key) for key in ("loss_d", "loss_g", "recon", "kl", "ada_p")},
            "fid": evaluation.get("fid"), "kid": evaluation.get("kid"), "kid_std": evaluation.get("kid_std"),
        })
    return rows


def run_info(path: Path) -> dict:
    """run.json (how the run was made), or {} for runs made before it existed or with it damaged."""
    try:
        info = json.loads((path / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def sort_rows(rows: list[dict], key: str) -> list[dict]:
    """Rows by one column (or a differing setting such as train.lr_g), lowest first, runs without a value last."""
    columns = [c for c in RUN_COLUMNS if c != "settings"] + sorted({k for r in rows for k in r["settings"]})
    if key not in columns:
        raise ValueError(f"cannot sort by {key!r}; columns: {', '.join(columns)}")
    value = (lambda r: r["settings"].get(key)) if key not in RUN_COLUMNS else (lambda r: r[key])
    return sorted(rows, key=lambda r: (value(r) is None, str(value(r)) if isinstance(value(r), str) else value(r) or 0))


def format_runs_table(rows: list[dict]) -> str:
    """The rows as an aligned text table; columns no run has a value for are left out."""
    if not rows:
        return "no runs found"
    flat = flat_rows(rows)
    columns = [c for c in flat[0] if any(row[c] is not None for row in flat)]
    cells = [[_cell(row[c]) for c in columns] for row in flat]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def flat_rows(rows: list[dict]) -> list[dict]:
    """Rows with their differing settings as columns of their own, right after run and preset (for CSV and text)."""
    return [{"run": r["run"], "preset": r["preset"], **r["settings"],
             **{k: v for k, v in r.items() if k not in ("run", "preset", "settings")}} for r in rows]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def read_evaluation(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        evaluation = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); rerun facegen evaluate on {path.parent}") from None
    if not isinstance(evaluation, dict):
        raise ValueError(f"{path} is not an evaluation (a JSON object of metrics); rerun facegen evaluate on {path.parent}")
    return evaluation


def run_names(paths: Sequence[Path]) -> list[str]:
    """Directory names; duplicates get their parent's name, then a number, so that every name is unique."""
    names = [p.resolve().name or str(p) for p in paths]
    names = [f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]
    unique, seen = [], {}
    for n in names:
        if names.count(n) > 1:  # the same directory twice, or same-named parents too
            seen[n] = seen.get(n, 0) + 1
            n = f"{n} #{seen[n]}"
        unique.append(n)
    return unique


def read_wall_seconds(path: str | Path) -> dict[str, float]:
    """benchmarks/tricks.sh's `wall_seconds.txt` ('name seconds' lines) as a dict; the last line of a name wins."""
    path = Path(path)
    seconds: dict[str, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            name, _, value = line.strip().rpartition(" ")
            try:
                seconds[name.strip()] = float(value)
            except ValueError:
                continue  # a blank or hand-edited line
    return seconds


def config_differences(runs: Sequence[Run]) -> list[str]:
    """Keys whose values differ across runs (a key a run lacks counts as different), plus ALWAYS_SHOWN."""
    keys = sorted({k for run in runs for k in run.config})
    differ = [k for k in keys if len({json.dumps(run.config.get(k, "<absent>"), sort_keys=True) for run in runs}) > 1]
    return [*[k for k in ALWAYS_SHOWN if k not in differ], *differ]


def metrics_seconds(records: list[dict], batch_size: int) -> float | None:
    """Training time estimated from the logged throughput: sum of steps * batch / img_per_s over log intervals."""
    total, last = 0.0, 0
    for r in records:
        if r.get("img_per_s") and "step" in r:
            total += (r["step"] - last) * batch_size / r["img_per_s"]
            last = r["step"]
    return total or None


def _plot_overlay(runs: Sequence[Run], keys: tuple[str, ...], title: str, ylabel: str, out: Path) -> Path:
    """Every run's `keys` against step in one axes: colour per run, linestyle per quantity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    styles = ("-", "--", ":", "-.")
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, run in enumerate(runs):
        for key, style in zip(keys, styles):
            steps, values = _series(run.records, key)
            marker = "o" if len(steps) <= 30 else None  # sparse series (KID checks, short runs) stay visible
            ax.plot(steps, values, color=colours[i % len(colours)], linestyle=style, linewidth=1, marker=marker, markersize=3)
    run_handles = [Line2D([], [], color=colours[i % len(colours)]) for i in range(len(runs))]
    runs_legend = ax.legend(run_handles, [run.name.replace("$", r"\$") for run in runs], title="run", loc="upper left",
                            bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.add_artist(runs_legend)
    ax.legend([Line2D([], [], color="black", linestyle=s) for s in styles[: len(keys)]], keys, title="quantity",
              loc="lower left", bbox_to_anchor=(1.01, 0.0), fontsize="small")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return save_figure(fig, out, bbox_inches="tight")  # keeps the legends outside the axes


def _format(key: str, value: float) -> str:
    if key.endswith("kid") or key.endswith("mse"):
        return f"{value:.4f}"
    if key in ("precision", "recall"):
        return f"{value:.3f}"
    return f"{value:.2f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _describe_seeds(seeds: Sequence[int]) -> str:
    seeds = list(seeds)
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds[:20])) + (", ..." if len(seeds) > 20 else "")


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child, .config td { text-align: left; }
th { background: #f3f3f3; }
td.best { background: #d9f2d9; font-weight: bold; }
td.none { color: #888; font-style: italic; text-align: center; }
.grids { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; width: 320px; }
figure img { width: 100%; image-rendering: pixelated; border: 1px solid #ccc; }
figcaption { font-size: 0.9em; }
.note { color: #a60; }
img.curve { max-width: 100%; }
"""


def _quality_table(runs: Sequence[Run], steps: dict[str, int], seconds: dict[str, tuple[float, bool]]) -> str:
    """Per run: checkpoint step, training time, and every metric of its eval.json, best per column highlighted."""
    e = html.escape
    columns = [q for q in QUALITY if q[0] not in OPTIONAL_QUALITY or any((r.evaluation or {}).get(q[0]) is not None for r in runs)]
    best: dict[str, float] = {}
    for key, _, lower in columns:
        values = [r.evaluation[key] for r in runs if r.evaluation and isinstance(r.evaluation.get(key), (int, float))]
        if len(values) > 1:
            best[key] = min(values) if lower else max(values)
    head = ["run", "step", "time", "steps/s", "eval step", "n"] + [title + (" ↓" if lower else " ↑") for _, title, lower in columns]
    rows = ["<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for run in runs:
        step = steps[run.name]
        cells = [f"<td>{e(run.name)}</td>", f"<td>{step}</td>"]
        if run.name in seconds:
            value, measured = seconds[run.name]
            cells += [f"<td>{'' if measured else '≈ '}{e(_duration(value))}</td>", f"<td>{step / value:.2f}</td>"]
        else:
            cells += ['<td class="none">unknown</td>'] * 2
        ev = run.evaluation
        if ev is None:
            cells.append(f'<td class="none" colspan="{len(columns) + 2}">not evaluated</td>')
        else:
            ev_step = ev.get("step")
            stale = ' <span class="note">(older checkpoint)</span>' if isinstance(ev_step, int) and ev_step != step else ""
            cells += [f"<td>{e(str(ev_step if ev_step is not None else '?'))}{stale}</td>", f"<td>{e(str(ev.get('n', '?')))}</td>"]
            for key, _, _ in columns:
                value = ev.get(key)
                if not isinstance(value, (int, float)):
                    cells.append('<td class="none">—</td>')
                    continue
                text = _format(key, value)
                if isinstance(ev.get(f"{key}_std"), (int, float)):
                    text += f" ± {_format(key, ev[f'{key}_std'])}"
                cls = ' class="best"' if best.get(key) == value else ""
                cells.append(f"<td{cls}>{e(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    notes = []
    # Which samples were scored (it names the checkpoint) may differ; the reference and preparation may not.
    protocols = {json.dumps([{k: v for k, v in (r.evaluation.get("protocol") or {}).items() if k != "samples"},
                             r.evaluation.get("kid_subset")], sort_keys=True) for r in runs if r.evaluation}
    if len(protocols) > 1:
        notes.append('<p class="note">The runs were evaluated under different protocols (see each eval.json); '
                     "their figures are not comparable.</p>")
    if any(not measured for _, measured in seconds.values()):
        notes.append("<p>≈: training time estimated from the throughput logged in metrics.jsonl.</p>")
    return "<table>" + "\n".join(rows) + "</table>\n" + "\n".join(notes)


def _config_table(runs: Sequence[Run]) -> str:
    e = html.escape
    keys = config_differences(runs)
    identical = all(k in ALWAYS_SHOWN for k in keys)
    rows = ["<tr><th>key</th>" + "".join(f"<th>{e(r.name)}</th>" for r in runs) + "</tr>"]
    for key in keys:
        values = [r.config.get(key, "—") for r in runs]
        shown = [v if isinstance(v, str) else json.dumps(v) for v in values]
        rows.append(f"<tr><td>{e(key)}</td>" + "".join(f"<td>{e(v)}</td>" for v in shown) + "</tr>")
    intro = "<p>identical configs</p>\n" if identical else "<p>Only the keys whose values differ, plus the model family and resolution.</p>\n"
    return intro + '<table class="config">' + "\n".join(rows) + "</table>"


def compare_runs(runs: list[Path], out: Path, seeds: Sequence[int] = range(64),
                 wall_seconds: dict[str, float] | None = None) -> Path:
    """Write out/index.html comparing the runs (quality, config differences, grids, curves); returns its path.

    wall_seconds maps a run's name (or directory name) to its training time; without it, each run's
    parent folder's wall_seconds.txt (written by benchmarks/tricks.sh) is read when present.
    """
    from facegen.checkpoint import load_generator
    from facegen.images import save_grid
    from facegen.sample import sample_seeds

    if not runs:
        raise ValueError("compare needs at least one run directory")
    if not list(seeds):
        raise ValueError("compare needs at least one seed, e.g. --seeds 0-63")
    paths = [Path(p) for p in runs]
    opened = [_open_run(p, n) for p, n in zip(paths, run_names(paths))]  # every run is checked before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # Grids: each run's newest generator (EMA when kept) at the same seeds.
    figures, steps = [], {}
    for run in opened:
        G, checkpoint = load_generator(run.checkpoint)
        steps[run.name] = int(checkpoint.state.get("step", 0))
        grid = save_grid(sample_seeds(G, list(seeds)), out / f"grid-{run.slug}.png")
        ema = " · EMA" if "G_ema" in checkpoint.nets else ""
        caption = f"{run.name} · step {steps[run.name]} · {checkpoint.architecture['resolution']} px{ema}"
        figures.append(f'<figure><a href="{quote(grid.name)}"><img src="{quote(grid.name)}" alt="{html.escape(run.name)}"></a>'
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    # Training time: measured (given or wall_seconds.txt), else estimated from metrics.jsonl.
    seconds: dict[str, tuple[float, bool]] = {}
    for run in opened:
        known = wall_seconds if wall_seconds is not None else read_wall_seconds(run.path.parent / "wall_seconds.txt")
        value = known.get(run.name, known.get(run.path.resolve().name))
        if value:
            seconds[run.name] = (float(value), True)
        elif estimate := metrics_seconds(run.records, int(run.config.get("train.batch_size", 0) or 0)):
            seconds[run.name] = (estimate, False)

    # Curves.
    logged = {key for run in opened for r in run.records for key in r}
    curves = [_plot_overlay(opened, keys, title, ylabel, out / name) for keys, title, ylabel, name in OVERLAYS
              if logged.intersection(keys)]

    e = html.escape
    run_list = "".join(f"<li><b>{e(r.name)}</b>: {e(str(r.path))} ({e(r.checkpoint.name)})</li>" for r in opened)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>facegen compare: {e(", ".join(r.name for r in opened))}</title>
<style>{CSS}</style></head>
<body>
<h1>facegen compare</h1>
<ul>{run_list}</ul>
<h2>Quality</h2>
{_quality_table(opened, steps, seconds)}
<h2>Config differences</h2>
{_config_table(opened)}
<h2>Samples (seeds {e(_describe_seeds(seeds))}, the same for every run)</h2>
<div class="grids">
{chr(10).join(figures)}
</div>
<h2>Training curves</h2>
{"".join(f'<p><img class="curve" src="{quote(c.name)}" alt="{e(c.stem)}"></p>' for c in curves)}
</body></html>
"""
    return write_text_atomic(out / "index.html", page)
