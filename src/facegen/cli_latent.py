"""The latent-space subcommands of `facegen`: reconstruct, latent-plot, interpolate, mix, directions, train-encoder
(edit is in cli_edit.py). Thin callers of encoding.py and latent.py; errors follow cli.py's rule (one line, exit 2).
"""

from __future__ import annotations

import argparse
import sys

from facegen.cli_edit import cmd_edit, parse_named, photo_latents_reported, photos_of

FIELD_SAMPLES = 20_000  # judged prior samples `directions --from-labels` fits a field to: it has more to learn than a plane
PLANE_SAMPLES = 4_000  # labelled latents it fits a plane to (--linear)


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from facegen import latent
    from facegen.checkpoint import load_autoencoder
    from facegen.encoding import mse_psnr, pairs_grid, reconstruct
    from facegen.images import grid_zoom, save_image

    load_autoencoder(args.run)  # a model without an encoder is refused here, in one line
    model = latent.open_model(args.run)
    originals, names, labels, _ = photos_of(model, args)
    reconstructions = reconstruct(model.E, model.G, originals, labels=None if labels is None else labels.numpy())
    mse, psnr = mse_psnr(originals, reconstructions)
    for name, m, p in zip(names, mse, psnr):
        print(f"{name}: MSE {m:.5f}  PSNR {p:.2f} dB")
    print(f"mean of {len(names)}: MSE {mse.mean():.5f}  PSNR {psnr.mean():.2f} dB (intensities in [0, 1])")
    save_image(pairs_grid(originals, reconstructions), args.out, grid_zoom(args.zoom, originals.shape[1]))
    print(f"wrote originals above their reconstructions to {args.out}")


def cmd_latent_plot(args: argparse.Namespace) -> None:
    from facegen.encoding import latent_plot

    result = latent_plot(args.run, args.attribute, args.out, args.method, args.n, progress=not args.quiet)
    scores = ", ".join(f"{name} {100 * value:.1f} %" for name, value in result["knn_accuracy"].items())
    print(f"{result['n']} held-out faces, {result['positive']} with {args.attribute}; 5-NN accuracy in 2-D: {scores} "
          f"(majority {100 * result['majority']:.1f} %)")
    print(f"wrote {args.out}")


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
        points, _ = photo_latents_reported(model, latent.load_photos(model, args.images.split(",")), args.refine_steps)
        labels = None
    path_labels = None if labels is None else latent.interpolate(labels, args.steps)  # a conditional model's labels move too
    frames = model.images(latent.interpolate(points, args.steps, args.slerp), path_labels)
    latent.save_frames(frames, args.out, per_row=args.steps, zoom=args.zoom)
    print(f"wrote {len(frames)} {'slerp' if args.slerp else 'lerp'} frames through {len(points)} points to {args.out}")


def cmd_mix(args: argparse.Namespace) -> None:
    from facegen import latent
    from facegen.images import save_grid
    from facegen.sample import parse_seeds

    model = latent.open_model(args.run)
    rows, columns = parse_seeds(args.rows), parse_seeds(args.columns)
    grid = latent.style_mix(model, rows, columns, args.cutoff)
    save_grid(grid, args.out, nrow=len(columns) + 1, zoom=args.zoom)
    print(f"wrote a style-mixing grid to {args.out}: rows {args.rows} give layers 0-{args.cutoff - 1} (coarse), "
          f"columns {args.columns} layers {args.cutoff}-{model.layers - 1} (fine)")


def cmd_directions(args: argparse.Namespace) -> None:
    from facegen import latent
    from facegen.sample import parse_seeds

    model = latent.open_model(args.run)
    directions = latent.load_directions(model.run_dir, required=False)
    made = {}
    for text in args.from_seeds or []:
        name, seeds = parse_named(text, "--from-seeds")
        made[name] = latent.direction_from_seeds(model, name, parse_seeds(seeds))
    if args.linear and not args.from_labels:
        raise ValueError("--linear fits a plane to labels: add --from-labels ATTR ...")
    if args.from_labels:
        made |= _label_directions(model, args)
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


def _label_directions(model, args: argparse.Namespace) -> dict:
    """directions --from-labels: the measured best method by default (a field fitted to judged samples, conditioned on
    every attribute the judge trusts, edits held near the conditions' boundaries), a plane with --linear. An encoder
    model without --judge fits planes to its encoded faces' true labels, the one way it has without a judge."""
    from facegen import latent
    from facegen.judge import load_judge

    field = not args.linear and (args.judge is not None or model.E is None)
    conditions = args.condition
    if conditions is None and field and args.judge is not None:
        conditions = latent.trusted_attributes(load_judge(args.judge)[1])  # an attribute is never held to its own feature
    if not field and not args.linear:
        print("facegen: planes fitted to the data's labels of encoded faces; add --judge DIR for the default field, whose edits "
              "keep the other attributes", file=sys.stderr)
    n = args.n or (FIELD_SAMPLES if field else PLANE_SAMPLES)
    return latent.directions_from_labels(model, args.from_labels, args.judge, n, conditions or (), nonlinear=field,
                                         progress=not args.quiet)


def cmd_train_encoder(args: argparse.Namespace) -> None:
    from facegen.latent import train_encoder

    path = train_encoder(args.run, args.steps, args.batch_size, progress=not args.quiet)
    print(f"encoder written to {path}; projection of photos into this run now starts from it")


def add_zoom_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zoom", type=int, help="enlarge grids by whole pixels (default: until a face is about 128 px wide; "
                                             "1 keeps the model's pixels)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconstruct", help="VAEs: encode and decode photos or held-out faces; per-image MSE and PSNR")
    p.add_argument("run", help="a run directory or checkpoint of a vae or vaegan")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--images", nargs="+", help="photos, prepared with the run's own crop and resolution")
    which.add_argument("--holdout", type=int, help="the first N held-out faces of the run's data")
    p.add_argument("--judge", help="a conditional model's photos: the attribute judge that reads their labels")
    p.add_argument("--out", required=True, help="PNG grid: originals above their reconstructions")
    add_zoom_option(p)
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
    add_zoom_option(p)
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
    add_zoom_option(p)
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("directions", help="make attribute directions in a run: hand-picked seeds, labels, or SeFa")
    p.add_argument("run", help="a run directory")
    p.add_argument("--from-seeds", action="append", metavar="NAME=SEEDS", help="normalised mean of hand-picked latents, e.g. Sunglasses=3,17,42")
    p.add_argument("--from-labels", nargs="+", metavar="ATTR", help="a direction per attribute from labelled latents: by default "
                   "a field (a small MLP) that edits follow face by face, holding every attribute the judge trusts")
    p.add_argument("--judge", help="with --from-labels: the attribute judge that labels samples (GANs, or data without labels)")
    p.add_argument("--n", type=int, help=f"with --from-labels: samples (or encoded faces) to fit on (default {FIELD_SAMPLES} "
                   f"for a field, {PLANE_SAMPLES} for a plane)")
    p.add_argument("--condition", nargs="+", metavar="ATTR",
                   help="with --from-labels: keep these attributes unchanged (each direction but those of its own feature: "
                   "No_Beard is not held to Mustache); default: a field holds every attribute the judge trusts, a plane none")
    p.add_argument("--linear", action="store_true", help="with --from-labels: a plane per attribute instead of the field "
                   "(InterFaceGAN's linear boundary; what an encoder model without --judge gets from its data's labels)")
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
    p.add_argument("--margin", type=float, help="with --remove or --make of a label direction: how far past the boundary "
                   "(default: 3 logits for a field, 1 spread for a plane)")
    p.add_argument("--hold-within", type=float, metavar="LOGITS", help="field directions: hold each condition only at faces "
                   "within LOGITS of its boundary (default 1; inf holds them everywhere)")
    p.add_argument("--walk", metavar="NAME", help="a grid: rows = faces, columns = strengths")
    p.add_argument("--range", default="-3,3", help="with --walk: LOW,HIGH strengths (default -3,3)")
    p.add_argument("--steps", type=int, default=7, help="with --walk: columns (default 7)")
    p.add_argument("--mean-of", metavar="NAME", help="the image of a hand-picked direction's mean latent")
    p.add_argument("--score", action="store_true", help="judge each add/remove: flip rate, other attributes, Inception cosine")
    p.add_argument("--judge", help="with --score: the attribute judge (it also reads the labels of a conditional model's photos)")
    p.add_argument("--refine-steps", type=int, help="photos: optimisation steps (refines an encoder's mean; projection length for GANs)")
    p.add_argument("--out", required=True, help="folder for edits.png, walk-NAME.png, mean-NAME.png and edit.json")
    add_zoom_option(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("train-encoder", help="GANs: train an encoder on the generator's samples, to start photo projection")
    p.add_argument("run", help="a GAN run directory")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train_encoder)
