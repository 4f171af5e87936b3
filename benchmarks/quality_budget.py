"""Quality per CPU-minute: recipes trained for the same wall-clock budget in one run, scored at fixed minutes.

    python benchmarks/quality_budget.py [--resolution 32] [--minutes 10,20,45] [--presets fast32 ...]
                                        [--references canonical recipe] [--data ../shared/data/celeba_subset]
                                        [--n 2000] [--out runs/quality-budget]

Recipes, one after another on an idle machine:
- `canonical`: pytorch/examples' DCGAN loop (train_speed.py's faithful copy: PIL decoding every epoch, fp32);
- `recipe`: facegen's dcganR + EMA 0.999 + DiffAugment color,translation (issue 10's table);
- every preset named with --presets, optionally with overrides joined by "+" (`fast32+model.base_channels=48`),
  which names a variant without a preset file of its own.
Each recipe trains until the first time mark, is snapshotted, and goes on to the next (facegen's runs are
resumed with a larger --minutes: the budget counts training time only, previews and checkpoints included).
A snapshot is a run folder (config.json + one checkpoint), so `facegen evaluate` scores it against the
held-out identities (FID, KID, precision/recall of --n samples) and `facegen compare` shows grids from
the same seeds. Memorisation: the median Inception distance from a sample to its nearest training image,
over the same for held-out real faces; about 1 when a model generalises, well below 1 when it copies.
The table and the compare page cover every snapshot in --out, not only the recipes named this time, so a
run split over invocations (or sessions) ends in one table; retraining a recipe replaces its snapshots.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import BATCH, Z_DIM, canonical_steps, machine  # noqa: E402

from facegen import checkpoint as ckpt  # noqa: E402
from facegen.config import load_config  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba_subset"
MEMORISATION_SAMPLES = 1000
REFERENCES = ("canonical", "recipe")


def facegen_cli() -> list[str]:
    return [sys.executable, "-m", "facegen"]


def snapshot_dir(out: Path, recipe: str, minutes: float) -> Path:
    return out / "snapshots" / f"{recipe}-{minutes:g}min"


def describe(info: dict) -> str:
    return f"{info['date']}  {info['cpu']}, {info['cores']} cores, avx512_bf16: {info['avx512_bf16']}, torch {info['torch']}"


def new_snapshot(out: Path, recipe: str, minutes: float) -> Path:
    """An empty snapshot folder, so scores cached from an earlier training of the recipe cannot outlive it,
    with the CPU that trained it: a table may join snapshots trained in different sessions."""
    folder = snapshot_dir(out, recipe, minutes)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "machine.json").write_text(json.dumps(machine()))
    return folder


def all_snapshots(out: Path) -> list[tuple[str, float]]:
    """(recipe, minutes) of every snapshot in --out, references first, then by name and minutes."""
    found = [folder.name.removesuffix("min").rsplit("-", 1) for folder in (out / "snapshots").glob("*min") if ckpt.latest(folder)]
    order = {name: i for i, name in enumerate(REFERENCES)}
    return sorted(((name, float(m)) for name, m in found), key=lambda s: (order.get(s[0], len(order)), s[0], s[1]))


def run_canonical(data: Path, resolution: int, marks: list[float], out: Path) -> None:
    """The canonical loop for the longest mark, pausing the clock at each mark to save a facegen checkpoint of G.
    It reads the JPEGs of facegen's training split only, so that no recipe sees the held-out identities."""
    from facegen.data import open_dataset

    cfg = load_config(f"dcgan{resolution}", overrides=[f"data.source={data}", f"train.batch_size={BATCH}", f"model.z_dim={Z_DIM}"])
    architecture = {"resolution": resolution, **cfg.model.architecture()}
    dataset = open_dataset(str(data), resolution, None, progress=False)
    assert not dataset.meta["skipped"], "cache rows would not match the files"
    jpegs = sorted((data / "img_align_celeba").glob("*.jpg"))
    files = [jpegs[i] for i in dataset.split_indices("train")]
    trained, step, pending = 0.0, 0, list(marks)
    t = time.perf_counter()
    for G, D, _ in canonical_steps(data, resolution, files):
        step += 1
        trained += time.perf_counter() - t
        if trained >= pending[0] * 60:
            folder = new_snapshot(out, "canonical", pending.pop(0))
            state = {"step": step, "train_seconds": trained, "config": cfg.to_dict()}
            ckpt.save(folder / "checkpoints" / f"ckpt-{step:07d}.safetensors",
                      ckpt.Checkpoint("dcgan", architecture, {"G": G.state_dict(), "D": D.state_dict()}, state))
            (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
            print(f"canonical: {step} steps in {trained / 60:.1f} min -> {folder}", flush=True)
            if not pending:
                return
        t = time.perf_counter()


def run_facegen(name: str, preset: str, extra: list[str], data: Path, marks: list[float], out: Path) -> None:
    """`facegen train` to each mark in turn (a resumed run keeps its clock), copying the newest checkpoint at each."""
    run = out / "runs" / name
    shutil.rmtree(run, ignore_errors=True)
    for i, minutes in enumerate(marks):
        command = ([*facegen_cli(), "train", "--preset", preset, "--data", str(data), *extra, "--epochs", "100000"] if i == 0
                   else [*facegen_cli(), "train", "--resume"])
        subprocess.run([*command, "--minutes", str(minutes), "--out", str(run), "--quiet"], check=True)
        folder = new_snapshot(out, name, minutes)
        newest = ckpt.latest(run)
        shutil.copy2(newest, folder / "checkpoints" / newest.name)
        shutil.copy2(run / "config.json", folder / "config.json")
        print(f"{name}: {ckpt.read_state(newest)['step']} steps at {minutes:g} min -> {folder}", flush=True)


def preset_with_overrides(spec: str) -> tuple[str, list[str]]:
    """`fast32+model.base_channels=48+data.mirror=true` -> ("fast32", ["--set", "model.base_channels=48", ...])."""
    preset, *overrides = spec.split("+")
    return preset, [arg for override in overrides for arg in ("--set", override)]


def memorisation(folder: Path, train_feats: torch.Tensor, holdout_feats: torch.Tensor, extractor) -> float:
    """Median nearest-training-image distance of samples over that of held-out faces (Inception features)."""
    from facegen.checkpoint import load_generator
    from facegen.sample import sample_seeds

    G, _ = load_generator(folder)
    samples = torch.from_numpy(extractor.features(sample_seeds(G, range(MEMORISATION_SAMPLES)), progress=False)).double()

    def nearest(feats: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.cdist(chunk, train_feats).min(dim=1).values for chunk in feats.split(256)])

    return float(nearest(samples).median() / nearest(holdout_feats).median())


def cached_memorisation(folder: Path, train_feats: torch.Tensor, holdout_feats: torch.Tensor, extractor) -> float:
    """Kept beside eval.json: a rerun that adds a recipe does not spend ~80 s per old snapshot again."""
    path = folder / "memorisation.json"
    if not path.is_file():
        path.write_text(json.dumps({"memorisation": memorisation(folder, train_feats, holdout_feats, extractor)}))
    return json.loads(path.read_text())["memorisation"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32, choices=(32, 64))
    parser.add_argument("--minutes", default="10,20,45", help="time marks, comma-separated (default 10,20,45)")
    parser.add_argument("--presets", nargs="*", default=[],
                        help="facegen presets to run beside the references; PRESET+KEY=VALUE+... adds overrides")
    parser.add_argument("--references", nargs="*", default=list(REFERENCES), choices=REFERENCES,
                        help="which references to train and score (default both; a run split over sessions names some)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=2000, help="samples per evaluation (default 2000)")
    parser.add_argument("--out", type=Path, default=Path("runs/quality-budget"))
    args = parser.parse_args()
    marks = sorted(float(m) for m in args.minutes.split(","))
    R = args.resolution
    recipes = {**({"recipe": (f"dcgan{R}", ["--set", "train.ema=0.999", "--set", "data.diffaugment=color,translation"])}
                  if "recipe" in args.references else {}),
               **{spec: preset_with_overrides(spec) for spec in args.presets}}
    print(describe(machine()), flush=True)

    # Train: each recipe alone on the machine, marks saved as snapshots (skipped when already there).
    if "canonical" in args.references and not all(ckpt.latest(snapshot_dir(args.out, "canonical", m)) for m in marks):
        run_canonical(args.data, R, marks, args.out)
    for name, (preset, extra) in recipes.items():
        if not all(ckpt.latest(snapshot_dir(args.out, name, m)) for m in marks):
            run_facegen(name, preset, extra, args.data, marks, args.out)

    # Score: the standard protocol through `facegen evaluate`, then memorisation in Inception space.
    from facegen.data import open_dataset
    from facegen.evaluate import reference_statistics
    from facegen.metrics import FeatureExtractor

    extractor = FeatureExtractor()
    dataset = open_dataset(str(args.data), R, None, progress=False)
    # Cached with the data like evaluate's reference (the training split's ~7,000 extractions: minutes, once per machine).
    feats = {split: torch.from_numpy(reference_statistics(dataset, split, None, extractor, progress=False).feats).double()
             for split in ("train", "holdout")}
    rows = []
    for name, minutes in all_snapshots(args.out):
        folder = snapshot_dir(args.out, name, minutes)
        if not (folder / "eval.json").is_file():
            subprocess.run([*facegen_cli(), "evaluate", str(folder), "--n", str(args.n), "--metrics", "fid,kid,pr", "--quiet"],
                           check=True, stdout=subprocess.DEVNULL)
        result = json.loads((folder / "eval.json").read_text())
        state = ckpt.read_state(folder)
        batch = json.loads((folder / "config.json").read_text())["train"]["batch_size"]
        rows.append({"recipe": name, "minutes": minutes, "steps": state["step"],
                     "img_per_s": state["step"] * batch / state["train_seconds"],
                     **{k: result.get(k) for k in ("fid", "kid", "kid_std", "precision", "recall")},
                     "memorisation": cached_memorisation(folder, feats["train"], feats["holdout"], extractor),
                     "trained_on": describe(json.loads((folder / "machine.json").read_text()))})
        print(json.dumps(rows[-1]), flush=True)

    machines = {r["trained_on"]: [] for r in rows}
    for r in rows:
        machines[r["trained_on"]].append(f"{r['recipe']} {r['minutes']:g}")
    lines = [f"{R} px; {args.n} samples vs the held-out split; trained on:", *(f"- {m}: {', '.join(names)}" for m, names in machines.items()),
             "", "| recipe | minutes | steps | img/s | FID | KID | precision | recall | memorisation |", "| --- " * 9 + "|"]
    lines += [f"| {r['recipe']} | {r['minutes']:g} | {r['steps']} | {r['img_per_s']:.0f} | {r['fid']:.1f} | {r['kid']:.4f} ± {r['kid_std']:.4f} "
              f"| {r['precision']:.3f} | {r['recall']:.3f} | {r['memorisation']:.2f} |" for r in rows]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    (args.out / "table.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))
    folders = [str(snapshot_dir(args.out, r["recipe"], r["minutes"])) for r in rows]
    subprocess.run([*facegen_cli(), "compare", *folders, "--out", str(args.out / "compare")], check=True)


if __name__ == "__main__":
    main()
