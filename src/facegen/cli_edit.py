"""`facegen edit`, and the faces every latent command starts from: seeds, or photos (--images, --holdout) encoded or
projected with a conditional model's labels. Errors follow cli.py's rule (one line, exit 2)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def holdout_faces(checkpoint, n: int, progress: bool = True, conditions: list[str] | None = None) -> tuple:
    """uint8 (n, R, R, 3): the first n held-out faces of the run's own data (unseen in training), their names, and
    (for a conditional model's `conditions`) their labels from the data (n, K), else None."""
    import numpy as np
    import torch

    if n < 1:
        raise ValueError(f"--holdout {n}: ask for at least one held-out face, e.g. --holdout 16")
    dataset = checkpoint.dataset(progress=progress)
    indices = dataset.split_indices("holdout")[:n]
    labels = None
    if conditions:
        columns, _ = dataset.condition_columns(conditions)
        labels = torch.from_numpy(dataset.labels[indices][:, columns].astype(np.float32))
    return np.asarray(dataset.images[indices]), [f"held-out #{i}" for i in indices], labels


def photos_of(model, args: argparse.Namespace) -> tuple:
    """The photos of --images or --holdout as the model's data is prepared, their names, and a conditional model's
    labels of them (the data's label file, else the judge's reading) with where they came from, which is printed (both
    None for an unconditional model)."""
    from facegen import latent

    if not args.images:
        photos, names, labels = holdout_faces(model.checkpoint, args.holdout, progress=not getattr(args, "quiet", False),
                                              conditions=model.condition_names)
        source = None if labels is None else "the data's label file"
    else:
        photos, names = latent.load_photos(model, args.images), list(args.images)
        labels, source = latent.photo_labels(model, photos, names, args.judge) if model.condition_names else (None, None)
    if source:
        print(f"labels of the faces ({', '.join(model.condition_names)}) from {source}")
    return photos, names, labels, source


def parse_named(text: str, flag: str) -> tuple[str, str]:
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


def _yes_no(text: str, flag: str) -> bool:
    answers = {"yes": True, "true": True, "no": False, "false": False}
    if text.lower() not in answers:
        raise ValueError(f"{flag}: {text!r} is not yes or no; e.g. --make No_Beard=yes")
    return answers[text.lower()]


def _latents_of(model, args: argparse.Namespace):
    """(z, labels (None for an unconditional model), images shown as 'originals', photo report or None): from --seeds,
    or from photos (--images or --holdout), encoded or projected."""
    from facegen.sample import parse_seeds

    if args.seeds:
        seeds = parse_seeds(args.seeds)
        z, y = model.latents_of_seeds(seeds), model.labels_of_seeds(seeds)
        return z, y, model.images(z, y), None
    photos, _, labels, source = photos_of(model, args)
    z, report = photo_latents_reported(model, photos, args.refine_steps, labels)
    if source:
        report["labels"] = source
    return z, labels, photos, report


def photo_latents_reported(model, photos, refine_steps: int | None, labels=None) -> tuple:
    """The photos' latents and a report: how they were found, per-photo MSE and PSNR, seconds per photo."""
    from facegen import latent
    from facegen.encoding import mse_psnr

    started = time.perf_counter()
    z, how = latent.photo_latents(model, photos, refine_steps, labels)
    seconds = (time.perf_counter() - started) / len(photos)
    mse, psnr = mse_psnr(photos, model.images(z, labels))
    print(f"{len(photos)} photos found by {how}: mean MSE {mse.mean():.5f}, PSNR {psnr.mean():.2f} dB, {1000 * seconds:.1f} ms per photo")
    return z, {"method": how, "seconds_per_photo": seconds, "mean_mse": float(mse.mean()), "mean_psnr": float(psnr.mean()),
               "mse": mse.tolist(), "psnr": psnr.tolist()}


def cmd_edit(args: argparse.Namespace) -> None:
    import json

    import numpy as np

    from facegen import latent
    from facegen.images import save_grid, save_image
    from facegen.sample import parse_seeds

    # Every number is read before any work, so that a typo never leaves half the outputs behind.
    added, made, labelled = ([parse_named(t, flag) for t in texts or []]
                             for flag, texts in (("--add", args.add), ("--make", args.make), ("--set", args.set)))
    operations = [("add", name, _number(value, f"--add {name}")) for name, value in added] + \
        [("remove", name, None) for name in args.remove or []] + \
        [("make", name, _yes_no(value, f"--make {name}")) for name, value in made] + \
        [("set", name, _label(value, f"--set {name}")) for name, value in labelled]
    if not (operations or args.walk or args.mean_of):
        raise ValueError("edit needs something to do: --add NAME=STRENGTH, --remove NAME, --make NAME=yes|no, "
                         "--set NAME=1|-1 (conditional models), --walk NAME or --mean-of NAME")
    walk_range = [_number(v, "--range") for v in _parse_range(args.range)] if args.walk else None
    if args.hold_within is not None and args.hold_within < 0:
        raise ValueError(f"--hold-within {args.hold_within}: a distance in logits from each condition's boundary, 0 or more "
                         "(e.g. --hold-within 1)")
    if args.walk and args.steps < 2:
        raise ValueError(f"--steps {args.steps}: a walk needs at least 2 strengths, e.g. --steps 7")
    model = latent.open_model(args.run)
    for kind, name, _ in operations:
        if kind == "set" and name not in model.condition_names:
            raise ValueError(f"--set {name}: " + (f"this model learnt {', '.join(model.condition_names)}" if model.condition_names else
                             "--set changes a conditional model's labels, and this run was trained without model.conditions; "
                             "move along a direction (--add, --make) or train one with --preset fast32-cond"))
    if model.space == "w" and not args.seeds and any(kind == "set" for kind, _, _ in operations):
        raise ValueError("--set on a style model's photos: their W+ latents already hold the labels they were projected with; "
                         "move them along directions (--add, --make) instead, or --set on --seeds")
    directions = latent.load_directions(model.run_dir, required=bool(args.walk or args.mean_of or any(k != "set" for k, _, _ in operations)))
    for kind, name, _ in operations:  # checked before any face is made, like the numbers above
        if kind == "make" and not latent.pick(directions, name).has_boundary:
            raise ValueError(f"--make {name}: that direction was made by {directions[name].method}, and only label "
                             "directions (--from-labels) have a boundary to cross; use --add or --remove for it")
    out = Path(args.out)
    z, y, originals, photos = _latents_of(model, args)
    record: dict = {"run": str(model.run_dir), "checkpoint": model.checkpoint.path.name,
                    "faces": args.seeds or args.images or f"the first {args.holdout} held-out faces",
                    "operations": [], "files": []}
    if photos:
        record["photos"] = photos
    start = model.images(z, y)  # what the edits start from: the samples, or the photos as the model sees them
    columns, scores = [originals] + ([start] if photos else []), []
    judge = trusted = extractor = start_features = None
    if args.score:
        from facegen.judge import load_judge
        from facegen.metrics import FeatureExtractor

        if not args.judge:
            raise ValueError("--score needs --judge DIR (made by facegen judge train) to read the attributes")
        judge, judge_checkpoint = load_judge(args.judge)
        trusted, extractor = latent.trusted_attributes(judge_checkpoint), FeatureExtractor()
        start_features = extractor.features(start, progress=False)  # once for every scored edit
    for kind, name, value in operations:
        if kind == "set":  # the latent stays; the label changes (+1 present, -1 absent, 0 unspecified)
            y_edited = y.clone()
            y_edited[:, model.condition_names.index(name)] = value
            # A style model's w holds its labels: the same seeds' z mapped with the new ones.
            relabelled = model.latents_of_seeds(parse_seeds(args.seeds), y_edited) if model.space == "w" else z
            edited = model.images(relabelled, y_edited)
            columns.append(edited)
            entry = {"op": "set", "attribute": name, "value": value}
            if judge is not None and name in judge.attr_names and value:
                moved = (y_edited != y).any(dim=1).numpy()
                entry["score"] = latent.score_edit(judge, trusted, start, edited, name, value > 0, moved,
                                                   extractor=extractor, before_features=start_features)
                scores.append(entry)
            record["operations"].append(entry)
            continue
        y_edited = y
        direction = latent.pick(directions, name)
        margin, hold_within = latent.edit_settings(direction, args.margin, args.hold_within)  # the asked, or the method's defaults
        if kind == "add":
            z_edited, target = latent.add(z, direction, value, hold_within, model.spherical), value > 0
        elif kind == "remove":
            z_edited, target = latent.remove(z, direction, margin, hold_within, model.spherical), False
        else:
            z_edited, target = latent.make(z, direction, value, margin, hold_within, model.spherical), value
        edited = model.images(z_edited, y_edited)
        columns.append(edited)
        entry = {"op": kind, "direction": name, "method": direction.method, "hold_within": hold_within} | \
            ({"strength": value} if kind == "add" else {"present": value, "margin": margin} if kind == "make" else {"margin": margin})
        if judge is not None and name in judge.attr_names:
            moved = (z_edited != z).flatten(1).any(dim=1).numpy()
            entry["score"] = latent.score_edit(judge, trusted, start, edited, name, target, moved,
                                               extractor=extractor, before_features=start_features,
                                               control=model.images(latent.random_moves(z, z_edited), y_edited))
            scores.append(entry)
        record["operations"].append(entry)
    if operations:
        grid = np.stack(columns, axis=1).reshape(-1, *start.shape[1:])  # rows: faces; columns: original, edits in order
        record["files"].append(str(save_grid(grid, out / "edits.png", nrow=len(columns), zoom=args.zoom)))
    if args.walk:
        strengths = np.linspace(*walk_range, args.steps).tolist()
        frames = model.images(latent.walk(z, latent.pick(directions, args.walk), strengths, model.spherical),
                              None if y is None else y.repeat_interleave(len(strengths), dim=0))
        record["files"].append(str(save_grid(frames, out / f"walk-{args.walk}.png", nrow=len(strengths), zoom=args.zoom)))
        record["operations"].append({"op": "walk", "direction": args.walk, "strengths": strengths})
    if args.mean_of:
        direction = latent.pick(directions, args.mean_of)
        if direction.mean is None:
            raise ValueError(f"direction {args.mean_of!r} was made by {direction.method}; only hand-picked (--from-seeds) "
                             "directions have a mean latent")
        record["files"].append(str(save_image(model.images(direction.mean[None], None if y is None else y[:1])[0],
                                              out / f"mean-{args.mean_of}.png")))
        record["operations"].append({"op": "mean", "direction": args.mean_of})
    from facegen.files import write_text_atomic

    write_text_atomic(out / "edit.json", json.dumps(record, indent=1))
    for entry in scores:
        s = entry["score"]
        reached = "no face needed it" if s["flip_rate"] is None else f"{100 * s['flip_rate']:.1f} % of {s['n_needed']}"
        control = (f" (in {100 * s['others_changed_control']:.1f} % when moved as far at random)"
                   if "others_changed_control" in s else "")
        print(f"{entry['op']} {entry.get('direction', entry.get('attribute'))}: {reached} reach {'it' if s['target'] else 'its absence'}; "
              f"of the {s['n_moved']} faces moved, other attributes change in {100 * s['others_changed']:.1f} %{control}, "
              + (f"its own feature's other labels ({', '.join(s['own_feature'])}) in {100 * s['own_feature_changed']:.1f} %, "
                 if s["own_feature"] else "")
              + f"Inception cosine {s.get('inception_cosine', float('nan')):.3f}")
    print(f"wrote {', '.join(record['files'])} and {out / 'edit.json'}")


def _label(text: str, flag: str) -> float:
    answers = {"1": 1.0, "+1": 1.0, "-1": -1.0, "0": 0.0, "yes": 1.0, "no": -1.0}
    if text.lower() not in answers:
        raise ValueError(f"{flag}={text}: a label is 1 (present), -1 (absent) or 0 (unspecified)")
    return answers[text.lower()]


def _parse_range(text: str) -> tuple[str, str]:
    low, sep, high = text.partition(",")
    if not sep:
        raise ValueError(f"--range {text!r} must be LOW,HIGH, e.g. --range -3,3")
    return low, high

