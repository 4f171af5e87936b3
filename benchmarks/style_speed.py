"""StyleGAN training speed on this machine: img/s of facegen's training step for a few sizes, and the modulated
convolution in its two equal forms (one grouped convolution over the batch, or the paper's training form: the
input scaled by the styles, one plain convolution, the output scaled by the demodulation coefficients).

    python benchmarks/style_speed.py [--resolution 32] [--batch 32] [--steps 20] [--warmup 4]
                                     [--sizes 1024/64/128/2,2048/128/256/4]   # channel_base/channel_max/w_dim/mapping_layers

Each size runs both forms, alternated, on random images in the precision and layout `facegen train` picks here;
fast32's DCGAN step is timed beside them as the yardstick.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import machine  # noqa: E402

from facegen import models, steps  # noqa: E402
from facegen.config import load_config  # noqa: E402
from facegen.devices import resolve_runtime  # noqa: E402
from facegen.models import stylegan  # noqa: E402


def time_step(family: str, architecture: dict, overrides: list[str], batch: int, n_steps: int, warmup: int) -> float:
    """img/s of `n_steps` training steps after `warmup`, with facegen's step function, optimizers and precision."""
    cfg = load_config(overrides=[f"model.family={family}", *overrides])
    runtime = resolve_runtime()
    torch.manual_seed(0)
    nets = {role: runtime.prepare(net) for role, net in models.build(family, **architecture).items()}
    opt = steps.Optimizers({role: torch.optim.Adam(net.parameters(), lr=2e-3, betas=(0.0, 0.99)) for role, net in nets.items()},
                           runtime.grad_scaler())
    noise = torch.Generator().manual_seed(0)
    G = nets["G"]
    x = torch.rand(batch, 3, architecture["resolution"], architecture["resolution"]) * 2 - 1
    x = x.to(memory_format=torch.channels_last) if runtime.channels_last else x
    seconds = 0.0
    for step in range(warmup + n_steps):
        ctx = steps.StepContext(cfg.loss, runtime, noise, lambda: torch.randn(batch, G.z_dim, generator=noise), step=step,
                                mixing=cfg.model.mixing if family == "stylegan" else 0.0)
        started = time.perf_counter()
        steps.STEPS[family](nets, opt, x, ctx)
        if step >= warmup:
            seconds += time.perf_counter() - started
    return batch * n_steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--sizes", default="1024/64/128/2,2048/128/256/4,32768/512/512/8")
    args = parser.parse_args()
    print(json.dumps(machine()), flush=True)
    R, rows = args.resolution, []
    dcgan = {"resolution": R, "base_channels": 32, "z_dim": 64}
    rows.append({"model": "fast32's DCGAN (base 32, z 64)", "img_per_s": time_step("dcgan", dcgan, [], args.batch, args.steps, args.warmup)})
    print(json.dumps(rows[-1]), flush=True)
    for size in args.sizes.split(","):
        base, cmax, w_dim, layers = map(int, size.split("/"))
        architecture = {"resolution": R, "z_dim": w_dim, "w_dim": w_dim, "mapping_layers": layers, "channel_base": base, "channel_max": cmax}
        for grouped in (False, True):
            original = stylegan.modulated_conv2d
            stylegan.modulated_conv2d = lambda *a, grouped_=grouped, original_=original, **k: original_(*a, **{**k, "grouped": grouped_})
            try:
                speed = time_step("stylegan", architecture, [], args.batch, args.steps, args.warmup)
            finally:
                stylegan.modulated_conv2d = original
            params = sum(p.numel() for net in models.build("stylegan", **architecture).values() for p in net.parameters())
            rows.append({"model": f"stylegan {size}", "training_conv": "grouped" if grouped else "scaled input",
                         "params_m": round(params / 1e6, 2), "img_per_s": speed})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{R} px, batch {args.batch}, {args.steps} steps after {args.warmup}\n")
    print("| model | training conv | params (M) | img/s |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r.get('training_conv', '')} | {r.get('params_m', '')} | {r['img_per_s']:.0f} |")


if __name__ == "__main__":
    main()
