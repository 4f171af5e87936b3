"""Faces on request, measured (issue 48): a conditional model against its unconditional twin, one machine, one budget.

    python benchmarks/conditions.py [--data ../shared/data/celeba_subset] [--minutes 10] [--out runs/conditions]
        [--attributes Male Smiling Eyeglasses Young Blond_Hair] [--edits Smiling=1 Eyeglasses=1 Male=-1]
        [--preset fast32] [--conditions PRESET_OR_LIST] [--n 1000] [--seeds 0-199] [--judge DIR] [--conditional-only]

The ground truth of issue 48 (labels exact, the judge trained on them), one conditional model at a time:
    python benchmarks/conditions.py --data synthetic:20000 --conditional-only --preset fast32 --minutes 10 \
        --attributes Eyeglasses Smiling Wearing_Hat No_Beard --n 500 --out runs/conditions-synthetic
    (and --preset vae64 for the conditional VAE)

Each step is skipped when its output exists, so a stopped run continues:
1. trains --preset and its conditional twin (`PRESET-cond`, or --preset with model.conditions=--conditions) for the
   same --minutes, one after the other (run alone on the machine: the budget is wall-clock); --conditional-only trains
   the twin alone and stops after step 4;
2. trains a judge on the data's labels (12 epochs at the models' resolution) unless --judge names one;
3. asked attributes: for each of --attributes set to +1 and to -1, the share of --n samples the judge reads as asked,
   beside the same share among the held-out real faces with that label (the judge's own ceiling), and how far the rates
   of the model's other conditions (outside the asked one's feature, `synthetic.same_feature`) move from the judge's
   reading of the held-out faces with that label: sampling on request draws the other conditions from training faces
   that agree with the asked one, so the data's frequencies given the asked label are the target (a synthetic beard
   is drawn on men only: asking for one should give men, and the marginal Male rate would call that a side effect);
4. KID of each model's samples (labels drawn from the data's for the conditional one) against the held-out faces;
5. edits on --seeds, scored by the judge: the conditional model's `--set NAME=V`, beside the unconditional model's
   directions from labels with the new default (a field holding what the judge trusts) and the old one (a plane,
   `--linear`), each edited with --make (faces moved past the boundary) and the plane also with the newcomer's
   `--add NAME=2`.
Writes OUT/table.md and prints it, naming the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import machine  # noqa: E402

from facegen import checkpoint as ckpt  # noqa: E402
from facegen.data.synthetic import same_feature  # noqa: E402
from facegen.judge import load_judge, probabilities  # noqa: E402
from facegen.sample import generate, labels_for_seeds, latents  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba_subset"


def facegen(*argv: str) -> str:
    """`facegen ARGV`, its stdout; a failure stops the benchmark with facegen's own line."""
    done = subprocess.run([sys.executable, "-m", "facegen", *argv], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"facegen {' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def asked_rates(run: Path, judge_path: Path, attributes: list[str], n: int) -> list[dict]:
    """Per attribute and value: the judge's share of n samples asked for it that read as asked, the same share among
    held-out real faces with that label, and the largest move of another condition's rate from those faces' (and
    which condition moved)."""
    judge, _ = load_judge(judge_path)
    G, checkpoint = ckpt.load_generator(run)
    dataset = checkpoint.dataset(progress=False)
    real = dataset.split_indices("holdout")
    real_p = probabilities(judge, np.asarray(dataset.images[real])) >= 0.5
    seeds = range(n)
    rows = []
    for attribute in attributes:
        column = judge.attr_names.index(attribute)
        for value in (1.0, -1.0):
            y = labels_for_seeds(G, seeds, {attribute: value})
            read = probabilities(judge, generate(G, latents(seeds, G.z_dim, G.z_dist), labels=y)) >= 0.5
            with_label = dataset.labels[real, dataset.attr_names.index(attribute)] == value
            given = real_p[with_label].mean(axis=0) if with_label.any() else real_p.mean(axis=0)  # the data's P(other | asked)
            moves = {a: abs(float(read[:, j].mean() - given[j])) for j, a in enumerate(judge.attr_names)
                     if a in G.condition_names and a not in same_feature(attribute)}
            most_moved = max(moves, key=moves.get, default=None)
            rows.append({"attribute": attribute, "asked": int(value), "samples_as_asked": float((read[:, column] == (value > 0)).mean()),
                         "real_as_labelled": float((real_p[with_label, column] == (value > 0)).mean()) if with_label.any() else None,
                         "largest_other_move": moves.get(most_moved, 0.0), "most_moved": most_moved})
    return rows


def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f} %"


def kid(run: Path) -> float:
    if not (run / "eval.json").is_file():
        facegen("evaluate", str(run), "--n", "2000", "--metrics", "kid", "--quiet")
    return float(json.loads((run / "eval.json").read_text())["kid"])


def edit_scores(run: Path, judge: Path, seeds: str, argv: list[str], out: Path) -> list[dict]:
    if not (out / "edit.json").is_file():
        facegen("edit", str(run), "--seeds", seeds, *argv, "--score", "--judge", str(judge), "--out", str(out))
    return [op for op in json.loads((out / "edit.json").read_text())["operations"] if "score" in op]


def edits_table(args: argparse.Namespace, plain: Path, twin: Path, judge: Path, lines: list[str]) -> dict[str, list[dict]]:
    """Step 5: the conditional model's --set edits beside the unconditional one's label directions, new default and
    old; appends the table's rows to `lines` and returns the scores."""
    out: Path = args.out
    edits = [(name, value) for name, value in (e.split("=") for e in args.edits)]
    conditional = edit_scores(twin, judge, args.seeds, [a for n, v in edits for a in ("--set", f"{n}={v}")], out / "edits-set")
    makes = [a for n, v in edits for a in ("--make", f"{n}={'yes' if float(v) > 0 else 'no'}")]
    names = [n for n, _ in edits]
    field_run, plane_run = out / f"{args.preset}-field", out / f"{args.preset}-plane"
    for copy, extra in ((field_run, []), (plane_run, ["--linear"])):
        if not (copy / "directions.json").is_file():
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(plain, copy)
            facegen("directions", str(copy), "--from-labels", *names, "--judge", str(judge), *extra, "--quiet")
    field = edit_scores(field_run, judge, args.seeds, makes, out / "edits-field")
    plane = edit_scores(plane_run, judge, args.seeds, makes, out / "edits-plane")
    newcomer = edit_scores(plane_run, judge, args.seeds, [a for n, v in edits for a in ("--add", f"{n}={2 * float(v):g}")],
                           out / "edits-plane-add2")
    lines += ["", f"| edit (seeds {args.seeds}) | flip | others changed | their control | Inception cos |", "| --- | --- | --- | --- | --- |"]
    for label, ops in ((f"{twin.name} --set", conditional), ("field (new default), --make", field), ("plane (--linear), --make", plane),
                       ("plane, --add 2 (the old newcomer)", newcomer)):
        for op in ops:
            s = op["score"]
            what = op.get("attribute") or op.get("direction")
            lines.append(f"| {label}: {what} | {percent(s['flip_rate'])} of {s['n_needed']} | {percent(s['others_changed'])} | "
                         f"{percent(s.get('others_changed_control'))} | {s['inception_cosine']:.3f} |")
    return {"set": conditional, "field": field, "plane": plane, "plane_add2": newcomer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("runs/conditions"))
    parser.add_argument("--preset", default="fast32")
    parser.add_argument("--conditions", help="the twin's model.conditions (default: the PRESET-cond preset's)")
    parser.add_argument("--attributes", nargs="+", default=["Male", "Smiling", "Eyeglasses", "Young", "Blond_Hair"])
    parser.add_argument("--edits", nargs="+", default=["Smiling=1", "Eyeglasses=1", "Male=-1"])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", default="0-199")
    parser.add_argument("--judge", type=Path, help="an attribute judge of the data's labels (default: train one)")
    parser.add_argument("--conditional-only", action="store_true",
                        help="train and score the conditional model alone: asked attributes and KID, no twin, no edits")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    plain, twin = out / args.preset, out / f"{args.preset}-cond"
    twin_args = (["--preset", args.preset, "--set", f"model.conditions={args.conditions}"] if args.conditions
                 else ["--preset", f"{args.preset}-cond"])
    runs = [(twin, twin_args)] if args.conditional_only else [(plain, ["--preset", args.preset]), (twin, twin_args)]
    for run, how in runs:
        if not (run / "checkpoints").is_dir():
            facegen("train", *how, "--data", args.data, "--minutes", str(args.minutes), "--out", str(run), "--quiet")
        else:  # a stopped run goes on to its budget; a finished one stops at once
            facegen("train", "--resume", "--out", str(run), "--quiet")
    judge = args.judge or out / "judge"
    if not (judge / "judge.safetensors").is_file() and args.judge is None:
        resolution = ckpt.load(twin).architecture["resolution"]
        facegen("judge", "train", args.data, "--resolution", str(resolution), "--epochs", "12", "--out", str(judge), "--quiet")

    asked = asked_rates(twin, judge, args.attributes, args.n)
    kids = {run.name: kid(run) for run, _ in runs}
    info = machine()
    lines = [f"{args.minutes:g} minutes each on {args.data}; {info['date']}, {info['cpu']}, {info['cores']} cores, "
             f"avx512_bf16: {info['avx512_bf16']}, torch {info['torch']}", "",
             "KID against the held-out faces (2,000 samples): " + ", ".join(f"{name} {value:.4f}" for name, value in kids.items())
             + ("" if args.conditional_only else f" ({kids[twin.name] / kids[plain.name]:.2f}x)"), "",
             f"| asked ({args.n} samples of {twin.name}) | read as asked | held-out real faces with that label, read as labelled | "
             "largest move of another condition's rate from those held-out faces' |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['attribute']}={r['asked']:+d} | {percent(r['samples_as_asked'])} | {percent(r['real_as_labelled'])} | "
              f"{100 * r['largest_other_move']:.1f} points ({r['most_moved'] or 'none'}) |" for r in asked]
    results = {"machine": info, "kid": kids, "asked": asked}
    if not args.conditional_only:
        results["edits"] = edits_table(args, plain, twin, judge, lines)
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(table)
    (out / "table.json").write_text(json.dumps(results, indent=1))
    print(table)


if __name__ == "__main__":
    main()
