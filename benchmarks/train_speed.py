"""DCGAN training speed: the canonical recipe (pytorch/examples dcgan) against `facegen train`, same data.

    python benchmarks/train_speed.py [--steps 12] [--warmup 2] [--repeats 2] [--resolutions 32,64] [--json]
                                     [--data ../shared/data/celeba_subset]

Both sides train the same networks (facegen's DCGAN at base 64 channels) with batch 128 and Adam
2e-4 (0.5, 0.999) on every image of the same folder. The canonical side decodes each JPEG with PIL
every epoch in 2 DataLoader workers and runs fp32 eager; facegen decodes once into a uint8 cache
(timed separately as `prepare`) and runs what devices.py picks for this machine. Each side runs in
its own subprocess, so peak memory (max RSS) is its own; throughput skips the same warm-up steps, and
the two sides alternate so that load from other processes falls on both alike.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from facegen.devices import cpu_has_native_bf16, resolve_runtime  # noqa: E402
from facegen.models.dcgan import Discriminator, Generator  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba_subset"
BATCH, LR, BETAS, Z_DIM = 128, 2e-4, (0.5, 0.999), 100
SAMPLE_IMAGES = 512


def peak_mb() -> dict[str, float]:
    """Max RSS of this process and of its largest finished child (DataLoader workers, decode pool), in MB."""
    return {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def steady_img_per_s(step_seconds: list[float], batch_sizes: list[int], warmup: int) -> float:
    return sum(batch_sizes[warmup:]) / sum(step_seconds[warmup:])


# The canonical recipe ------------------------------------------------------------------------------


class JPEGFolder(torch.utils.data.Dataset):
    """ImageFolder + Resize(R) + CenterCrop(R) + ToTensor + Normalize(0.5, 0.5), written without torchvision."""

    def __init__(self, folder: Path, resolution: int, files: list[Path] | None = None) -> None:
        self.files, self.resolution = files if files is not None else sorted(folder.glob("*.jpg")), resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with open(self.files[i], "rb") as f:
            image = Image.open(f).convert("RGB")
        r, (w, h) = self.resolution, image.size
        size = (r, int(r * h / w)) if w <= h else (int(r * w / h), r)  # shorter side -> r, as Resize(int)
        image = image.resize(size, Image.Resampling.BILINEAR)
        left, top = int(round((size[0] - r) / 2.0)), int(round((size[1] - r) / 2.0))
        image = image.crop((left, top, left + r, top + r))
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous().float().div(255)  # a writable copy, as ToTensor makes
        return x.sub_(0.5).div_(0.5), 0


def canonical_steps(data: Path, resolution: int, files: list[Path] | None = None):
    """pytorch/examples dcgan main.py's loop: D on real, then on fake.detach(), then G through D (D's grads too).
    Yields (G, D, batch size) after every step, for as long as it is asked. `files`: a subset of the JPEGs."""
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(JPEGFolder(data / "img_align_celeba", resolution, files), batch_size=BATCH,
                                         shuffle=True, num_workers=2)
    G, D = Generator(resolution, Z_DIM, base_channels=64), Discriminator(resolution, base_channels=64)
    criterion = torch.nn.BCEWithLogitsLoss()  # = Sigmoid + BCELoss; our D returns logits
    opt_D = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    opt_G = torch.optim.Adam(G.parameters(), lr=LR, betas=BETAS)
    batches = iter(loader)
    try:
        while True:
            try:
                real, _ = next(batches)
            except StopIteration:  # a new epoch: new shuffle, every JPEG decoded again
                batches = iter(loader)
                real, _ = next(batches)
            b = real.size(0)
            D.zero_grad()
            label = torch.full((b,), 1.0)
            err_real = criterion(D(real), label)
            err_real.backward()
            fake = G(torch.randn(b, Z_DIM))
            label.fill_(0.0)
            err_fake = criterion(D(fake.detach()), label)
            err_fake.backward()
            opt_D.step()
            G.zero_grad()
            label.fill_(1.0)
            err_G = criterion(D(fake), label)
            err_G.backward()
            opt_G.step()
            _ = (err_real + err_fake).item(), err_G.item()  # main.py prints these every iteration
            yield G, D, b
    finally:
        del batches  # joins the workers, so RUSAGE_CHILDREN includes them
        gc.collect()


def run_canonical(data: Path, resolution: int, steps: int, warmup: int) -> dict:
    """The canonical loop's throughput over `steps` steps."""
    seconds, sizes = [], []
    training = canonical_steps(data, resolution)
    t = time.perf_counter()
    for _, _, b in itertools.islice(training, steps):
        now = time.perf_counter()
        seconds.append(now - t)
        sizes.append(b)
        t = now
    training.close()
    return {"img_per_s": steady_img_per_s(seconds, sizes, warmup), "peak_mb": peak_mb(),
            "threads": torch.get_num_threads(), "precision": "fp32", "channels_last": False}


# facegen ----------------------------------------------------------------------------------------------


def run_prepare(data: Path, resolution: int) -> dict:
    from facegen.data import open_cache, prepare

    start = time.perf_counter()
    path = prepare(str(data), resolution, force=True, progress=False)
    seconds = time.perf_counter() - start
    count = open_cache(path).meta["count"]
    return {"img_per_s": count / seconds, "images": count, "seconds": seconds, "peak_mb": peak_mb()}


def run_facegen(data: Path, resolution: int, steps: int, warmup: int) -> dict:
    """`facegen train` on the cache run_prepare left, one metrics record per step; then sampling."""
    from facegen.checkpoint import load_generator
    from facegen.config import load_config
    from facegen.sample import sample_seeds
    from facegen.train import train

    overrides = [f"data.source={data}", "data.split=all", f"train.batch_size={BATCH}", f"train.steps={steps}",
                 "train.log_every=1", "train.preview_every=1000000", "train.checkpoint_every=1000000"]
    cfg = load_config(f"dcgan{resolution}", overrides=overrides)
    assert (cfg.train.lr_d, cfg.train.lr_g, cfg.train.betas_d, cfg.model.base_channels) == (LR, LR, BETAS, 64)
    runtime = resolve_runtime(cfg.train.device, cfg.train.precision)
    with tempfile.TemporaryDirectory() as tmp:
        out = train(cfg, Path(tmp) / "run", progress=False)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        seconds = [BATCH / r["img_per_s"] for r in records]  # one record per step
        train_peak = peak_mb()

        G, _ = load_generator(out)
        sample_seeds(G, range(64))  # warm-up
        start = time.perf_counter()
        sample_seeds(G, range(SAMPLE_IMAGES))
        sample_img_per_s = SAMPLE_IMAGES / (time.perf_counter() - start)
    return {"img_per_s": steady_img_per_s(seconds, [BATCH] * len(seconds), warmup), "peak_mb": train_peak,
            "sample_img_per_s": sample_img_per_s, "threads": torch.get_num_threads(),
            "precision": runtime.precision, "channels_last": runtime.channels_last}


# Orchestration ----------------------------------------------------------------------------------------


def cpu_seconds_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (all processes), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU seconds of this process's finished descendants: the workers and their own workers."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def in_subprocess(role: str, args: argparse.Namespace, resolution: int, env: dict[str, str]) -> dict:
    """One measurement in a fresh process, plus the share of the machine's CPU other processes took meanwhile."""
    command = [sys.executable, __file__, "--worker", role, "--resolution", str(resolution), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--data", str(args.data)]
    busy, ours, wall = cpu_seconds_busy(), children_cpu_seconds(), time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{role} at {resolution} px failed:\n{result.stderr[-3000:]}")
    others = (cpu_seconds_busy() - busy) - (children_cpu_seconds() - ours)
    return {**json.loads(result.stdout.strip().splitlines()[-1]),
            "others_cpu_share": max(0.0, others) / ((time.perf_counter() - wall) * os.cpu_count())}


def best_of(runs: list[dict], key: str = "img_per_s") -> dict:
    """The fastest run, which other processes slowed least; every run's figure is kept alongside."""
    return {**max(runs, key=lambda run: run[key]), f"all_{key}": [run[key] for run in runs]}


def machine() -> dict:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        flags = set(next(line for line in cpuinfo.splitlines() if line.startswith("flags")).split())
    except (OSError, StopIteration):
        model, flags = platform.processor() or "unknown", set()
    return {"cpu": model, "cores": os.cpu_count(), "avx512_bf16": cpu_has_native_bf16(),
            "avx512": "avx512f" in flags, "avx512_vnni": "avx512_vnni" in flags, "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d")}


def print_report(info: dict, rows: list[dict], args: argparse.Namespace, seconds: float) -> None:
    c0, f0 = rows[0]["canonical"], rows[0]["facegen"]
    print(f"{info['date']}  {info['cpu']}, {info['cores']} cores, avx512_bf16: {'yes' if info['avx512_bf16'] else 'no'}"
          f" (avx512f: {'yes' if info['avx512'] else 'no'}, avx512_vnni: {'yes' if info['avx512_vnni'] else 'no'}), "
          f"torch {info['torch']}")
    print(f"canonical: fp32 NCHW, {c0['threads']} threads + 2 DataLoader workers decoding JPEGs; facegen: {f0['precision']}"
          f"{' channels_last' if f0['channels_last'] else ''}, {f0['threads']} threads, uint8 cache")
    print(f"batch {BATCH}; img/s over steps {args.warmup + 1}-{args.steps} of each run, best of {args.repeats} alternating runs")
    print(f"\n{'res':>4} | {'canonical img/s':>15} | {'facegen img/s':>13} | {'ratio':>6} | {'canonical peak MB':>17} | "
          f"{'facegen peak MB':>15} | {'others CPU':>10}")
    print(f"{'':>4} | {'':>15} | {'':>13} | {'':>6} | {'main / per worker':>17} | {'':>15} | {'can. / fg.':>10}")
    for row in rows:
        c, f = row["canonical"], row["facegen"]
        print(f"{row['resolution']:>4} | {c['img_per_s']:15.1f} | {f['img_per_s']:13.1f} | {row['ratio']:5.2f}x | "
              f"{c['peak_mb']['main']:7.0f} / {c['peak_mb']['workers']:7.0f} | {f['peak_mb']['main']:15.0f} | "
              f"{c['others_cpu_share']:4.0%} / {f['others_cpu_share']:3.0%}")
    print()
    for row in rows:
        p, f = row["prepare"], row["facegen"]
        print(f"{row['resolution']:>4} px  prepare {p['img_per_s']:6.0f} img/s ({p['images']} JPEGs in {p['seconds']:.1f} s, "
              f"{os.cpu_count()} processes)   sample {f['sample_img_per_s']:6.0f} img/s ({SAMPLE_IMAGES} images, batch 64)")
    noisy = max(run["others_cpu_share"] for row in rows for run in (row["canonical"], row["facegen"], row["prepare"]))
    print(f"\n{seconds:.0f} s in all; other processes took up to {noisy:.0%} of the machine's CPU during a measurement"
          f"{': the numbers are noisy' if noisy > 0.05 else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="training steps per run (default 12)")
    parser.add_argument("--warmup", type=int, default=2, help="first steps of each run left out of img/s (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per side, the best counts (default 2)")
    parser.add_argument("--resolutions", default="32,64", help="comma-separated, from 32, 64 (default 32,64)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a CelebA-layout folder (img_align_celeba/)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--worker", choices=["canonical", "prepare", "facegen"], help=argparse.SUPPRESS)
    parser.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = {"canonical": lambda: run_canonical(args.data, args.resolution, args.steps, args.warmup),
               "prepare": lambda: run_prepare(args.data, args.resolution),
               "facegen": lambda: run_facegen(args.data, args.resolution, args.steps, args.warmup)}[args.worker]
        print(json.dumps(run()))
        return
    if args.steps <= args.warmup or args.repeats < 1:
        raise SystemExit(f"--steps {args.steps} must exceed --warmup {args.warmup}, and --repeats be at least 1")
    if not (args.data / "img_align_celeba").is_dir():
        raise SystemExit(f"{args.data} has no img_align_celeba/ folder; pass --data CELEBA_ROOT")
    resolutions = [int(r) for r in args.resolutions.split(",")]
    if not set(resolutions) <= {32, 64}:
        raise SystemExit(f"--resolutions {args.resolutions}: choose from 32, 64 (the dcgan32 / dcgan64 presets)")

    info, rows, started = machine(), [], time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:  # a private cache: prepare's forced rebuild touches nobody's
        env = {**os.environ, "FACEGEN_CACHE": cache}
        for resolution in resolutions:
            prep = in_subprocess("prepare", args, resolution, env)
            runs = {"canonical": [], "facegen": []}
            for _ in range(args.repeats):  # alternating, so a burst of load elsewhere hits both sides alike
                for side in runs:
                    runs[side].append(in_subprocess(side, args, resolution, env))
            canonical, ours = best_of(runs["canonical"]), best_of(runs["facegen"])
            ours["sample_img_per_s"] = best_of(runs["facegen"], "sample_img_per_s")["sample_img_per_s"]
            rows.append({"resolution": resolution, "canonical": canonical, "facegen": ours, "prepare": prep,
                         "ratio": ours["img_per_s"] / canonical["img_per_s"]})
    seconds = time.perf_counter() - started

    print_report(info, rows, args, seconds)
    if args.json:
        print(json.dumps({"machine": info, "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
                          "batch_size": BATCH, "seconds": seconds, "results": rows}))


if __name__ == "__main__":
    main()
