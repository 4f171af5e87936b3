"""The latent-space subcommands of `facegen`: reconstruct, latent-plot, interpolate, directions, edit,
train-encoder. Thin callers of encoding.py and latent.py; errors follow cli.py's rule (one line, exit 2).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _holdout_faces(checkpoint, n: int, progress: bool = True) -> tuple:
    """uint8 (n, R, R, 3): the first n held-out faces of the run's own data (unseen in training), and their names."""
    import numpy as np

    if n < 1:
        raise ValueError(f"--holdout {n}: ask for at least one held-out face, e.g. --holdout 16")
    dataset = checkpoint.dataset(progress=progress)
    indices = dataset.split_indices("holdout")[:n]
    return np.asarray(dataset.images[indices]), [f"held-out #{i}" for i in indices]


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from facegen.checkpoint import load_autoencoder
    from facegen.data import load_photos
    from facegen.encoding import mse_psnr, pairs_grid, reconstruct
    from facegen.images import save_image

    E, G, checkpoint = load_autoencoder(args.run)
    if args.images:
        names = list(args.images)
        originals = load_photos(names, checkpoint.architecture["resolution"], checkpoint.state["config"]["data"]["crop"])
    else:
        originals, names = _holdout_faces(checkpoint, args.holdout, progress=not args.quiet)
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


def _yes_no(text: str, flag: str) -> bool:
    answers = {"yes": True, "true": True, "no": False, "false": False}
    if text.lower() not in answers:
        raise ValueError(f"{flag}: {text!r} is not yes or no; e.g. --make No_Beard=yes")
    return answers[text.lower()]


def _latents_of(model, args: argparse.Namespace):
    """(z, labels (None for an unconditional model), images shown as 'originals', photo report or None): from --seeds,
    or from photos (--images or --holdout), encoded or projected."""
    from facegen import latent
    from facegen.sample import parse_seeds

    if args.seeds:
        seeds = parse_seeds(args.seeds)
        z, y = model.latents_of_seeds(seeds), model.labels_of_seeds(seeds)
        return z, y, model.images(z, y), None
    photos = latent.load_photos(model, args.images) if args.images else _holdout_faces(model.checkpoint, args.holdout)[0]
    z, report = _photo_latents(model, photos, args.refine_steps)
    return z, None, photos, report


def _photo_latents(model, photos, refine_steps: int | None) -> tuple:
    """The photos' latents and a report: how they were found, per-photo MSE and PSNR, seconds per photo."""
    from facegen import latent
    from facegen.encoding import mse_psnr

    started = time.perf_counter()
    z, how = latent.photo_latents(model, photos, refine_steps)
    seconds = (time.perf_counter() - started) / len(photos)
    mse, psnr = mse_psnr(photos, model.images(z))
    print(f"{len(photos)} photos found by {how}: mean MSE {mse.mean():.5f}, PSNR {psnr.mean():.2f} dB, {1000 * seconds:.1f} ms per photo")
    return z, {"method": how, "seconds_per_photo": seconds, "mean_mse": float(mse.mean()), "mean_psnr": float(psnr.mean()),
               "mse": mse.tolist(), "psnr": psnr.tolist()}


def cmd_interpolate(args: argparse.Namespace) -> None:
    from facegen import latent
    from facegen.sample import parse_seeds

    model = latent.open_model(args.run)
    if args.slerp and not model.spherical:
        raise ValueError(f"--slerp follows the sphere a Gaussian prior's z lie on; this model interpolates in {model.space}, "
                         "where lerp is natural: drop --slerp")
    if args.seeds:
        seeds = parse_seeds(args.seeds)
        points, labels = model.latents_of_seeds(seeds), model.labels_of_seeds(seeds)
    else:
        points, _ = _photo_latents(model, latent.load_photos(model, args.images.split(",")), args.refine_steps)
        labels = None
    path_labels = None if labels is None else latent.interpolate(labels, args.steps)  # a conditional model's labels move too
    frames = model.images(latent.interpolate(points, args.steps, args.slerp), path_labels)
    latent.save_frames(frames, args.out, per_row=args.steps)
    print(f"wrote {len(frames)} {'slerp' if args.slerp else 'lerp'} frames through {len(points)} points to {args.out}")


def cmd_mix(args: argparse.Namespace) -> None:
    from facegen import latent
    from facegen.images import make_grid, save_image
    from facegen.sample import parse_seeds

    model = latent.open_model(args.run)
    rows, columns = parse_seeds(args.rows), parse_seeds(args.columns)
    grid = latent.style_mix(model, rows, columns, args.cutoff)
    save_image(make_grid(grid, nrow=len(columns) + 1), args.out)
    print(f"wrote a style-mixing grid to {args.out}: rows {args.rows} give layers 0-{args.cutoff - 1} (coarse), "
          f"columns {args.columns} layers {args.cutoff}-{model.layers - 1} (fine)")


def cmd_directions(args: argparse.Namespace) -> None:
    from facegen import latent
    from facegen.sample import parse_seeds

    model = latent.open_model(args.run)
    directions = latent.load_directions(model.run_dir, required=False)
    made = {}
    for text in args.from_seeds or []:
        name, seeds = _parse_named(text, "--from-seeds")
        made[name] = latent.direction_from_seeds(model, name, parse_seeds(seeds))
    if args.nonlinear and not args.from_labels:
        raise ValueError("--nonlinear fits a field to labels: add --from-labels ATTR ...")
    if args.from_labels:
        made |= latent.directions_from_labels(model, args.from_labels, args.judge, args.n, args.condition or (),
                                              nonlinear=args.nonlinear, progress=not args.quiet)
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
    from facegen.sample import parse_seeds

    # Every number is read before any work, so that a typo never leaves half the outputs behind.
    added, made, labelled = ([_parse_named(t, flag) for t in texts or []]
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
    directions = latent.load_directions(model.run_dir, required=bool(args.walk or args.mean_of or any(k != "set" for k, _, _ in operations)))
    for kind, name, _ in operations:  # checked before any face is made, like the numbers above
        if kind == "make" and not latent.pick(directions, name).has_boundary:
            raise ValueError(f"--make {name}: that direction was made by {directions[name].method}, and only label "
                             "directions (--from-labels) have a boundary to cross; use --add or --remove for it")
    out = Path(args.out)
    z, y, originals, photos = _latents_of(model, args)
    record: dict = {"run": str(model.run_dir), "checkpoint": model.checkpoint.path.name, "faces": args.seeds or args.images or f"the first {args.holdout} held-out faces",
                    "margin": args.margin, "hold_within": args.hold_within, "operations": [], "files": []}
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
        if kind == "add":
            z_edited, target = latent.add(z, direction, value, args.hold_within, model.spherical), value > 0
        elif kind == "remove":
            z_edited, target = latent.remove(z, direction, args.margin, args.hold_within, model.spherical), False
        else:
            z_edited, target = latent.make(z, direction, value, args.margin, args.hold_within, model.spherical), value
        edited = model.images(z_edited, y_edited)
        columns.append(edited)
        entry = {"op": kind, "direction": name, "method": direction.method} | \
            ({"strength": value} if kind == "add" else {"present": value} if kind == "make" else {})
        if judge is not None and name in judge.attr_names:
            moved = (z_edited != z).flatten(1).any(dim=1).numpy()
            entry["score"] = latent.score_edit(judge, trusted, start, edited, name, target, moved,
                                               extractor=extractor, before_features=start_features,
                                               control=model.images(latent.random_moves(z, z_edited), y_edited))
            scores.append(entry)
        record["operations"].append(entry)
    if operations:
        grid = np.stack(columns, axis=1).reshape(-1, *start.shape[1:])  # rows: faces; columns: original, edits in order
        record["files"].append(str(save_image(make_grid(grid, nrow=len(columns)), out / "edits.png")))
    if args.walk:
        strengths = np.linspace(*walk_range, args.steps).tolist()
        frames = model.images(latent.walk(z, latent.pick(directions, args.walk), strengths, model.spherical),
                              None if y is None else y.repeat_interleave(len(strengths), dim=0))
        record["files"].append(str(save_image(make_grid(frames, nrow=len(strengths)), out / f"walk-{args.walk}.png")))
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


def cmd_train_encoder(args: argparse.Namespace) -> None:
    from facegen.latent import train_encoder

    path = train_encoder(args.run, args.steps, args.batch_size, progress=not args.quiet)
    print(f"encoder written to {path}; projection of photos into this run now starts from it")


def add_parsers(sub: argparse._SubParsersAction) -> None:
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

    p = sub.add_parser("mix", help="style models: a style-mixing grid, coarse styles of the rows' seeds with fine styles of the columns'")
    p.add_argument("run", help="a run directory or checkpoint of a style model")
    p.add_argument("--rows", required=True, help="seeds whose coarse styles (pose, face shape) each row keeps, e.g. 0-3")
    p.add_argument("--columns", required=True, help="seeds whose fine styles (colours, texture) each column gives, e.g. 4-9")
    p.add_argument("--cutoff", type=int, default=3, help="the first layer taken from the column's w (default 3: after 8 px)")
    p.add_argument("--out", required=True, help="the PNG grid to write")
    p.set_defaults(func=cmd_mix)

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
    p.add_argument("--condition", nargs="+", metavar="ATTR", help="with --from-labels: keep these attributes unchanged (each direction but those of its own feature: "
                   "No_Beard is not held to Mustache)")
    p.add_argument("--nonlinear", action="store_true", help="with --from-labels: fit a small MLP on z instead of a plane; "
                   "edits follow each face's own gradient of it (for GANs, whose z no plane separates well)")
    p.add_argument("--sefa", type=int, metavar="K", help="the top K unsupervised directions of G's first layer (SeFa)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_directions)

    p = sub.add_parser("edit", help="move faces along directions: add, remove, walk, mean image; optionally scored")
    p.add_argument("run", help="a run directory with directions")
    faces = p.add_mutually_exclusive_group(required=True)
    faces.add_argument("--seeds", help="seed list, e.g. 0-7")
    faces.add_argument("--images", nargs="+", help="photos: encoded (VAEs) or projected (GANs)")
    faces.add_argument("--holdout", type=int, metavar="N", help="the first N held-out faces of the run's data, as photos")
    p.add_argument("--add", action="append", metavar="NAME=STRENGTH", help="add a direction, in units of the labels' spread along it")
    p.add_argument("--remove", action="append", metavar="NAME", help="take a feature out (projection, or past the label boundary)")
    p.add_argument("--make", action="append", metavar="NAME=yes|no", help="label directions: move only the faces on the wrong side "
                   "of the boundary to --margin spreads past it (--make No_Beard=yes takes beards off, and only from bearded faces)")
    p.add_argument("--set", action="append", metavar="NAME=1|-1", help="conditional models: the same latent with this label "
                   "changed (1 present, -1 absent, 0 unspecified), e.g. --set Smiling=1")
    p.add_argument("--margin", type=float, default=1.0, help="with --remove or --make of a label direction: spreads past the boundary (default 1)")
    p.add_argument("--hold-within", type=float, metavar="LOGITS", help="field directions: hold each condition only at faces "
                   "within LOGITS of its boundary (default: everywhere)")
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
