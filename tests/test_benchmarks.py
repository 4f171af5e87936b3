"""The benchmarks' bookkeeping: a quality_budget.py run split over invocations ends in one table; style_edits.sh tables what it finds;
conditions.py compares samples asked for a label with the held-out faces carrying it."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import run_cli

from facegen import checkpoint as ckpt
from facegen.config import load_config
from facegen.judge import load_judge, probabilities
from facegen.sample import generate, labels_for_seeds, latents
from facegen.train import train

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


sys.path.insert(0, str(BENCHMARKS))  # the scripts import train_speed beside them


def load_benchmark(name: str):
    """A benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


qb = load_benchmark("quality_budget")
conditions = load_benchmark("conditions")


def test_table_covers_every_snapshot_references_first(tmp_path):
    for recipe, minutes in [("fast32+train.lr_decay=0.5", 45), ("recipe", 45), ("fast32", 10), ("recipe", 10), ("canonical", 45)]:
        folder = qb.new_snapshot(tmp_path, recipe, minutes)
        (folder / "checkpoints" / "ckpt-0000010.safetensors").write_bytes(b"")
    qb.new_snapshot(tmp_path, "fast32", 20)  # interrupted before its checkpoint was copied: not a row
    assert qb.all_snapshots(tmp_path) == [("canonical", 45.0), ("recipe", 10.0), ("recipe", 45.0),
                                          ("fast32", 10.0), ("fast32+train.lr_decay=0.5", 45.0)]


def test_retraining_a_recipe_drops_its_cached_scores(tmp_path):
    folder = qb.new_snapshot(tmp_path, "fast32", 10)
    for stale in ("eval.json", "memorisation.json", "checkpoints/ckpt-0008001.safetensors"):
        (folder / stale).write_text("{}")
    assert qb.new_snapshot(tmp_path, "fast32", 10) == folder
    assert sorted(p.name for p in folder.rglob("*")) == ["checkpoints", "machine.json"]


def test_style_edits_tables_the_scores_it_finds(tmp_path):
    """style_edits.sh skips every step whose output exists and tables what the edits wrote (FACEGEN=false: no step may run)."""
    out = tmp_path / "edits"
    (out / "judge").mkdir(parents=True)
    (out / "judge" / "judge.safetensors").write_bytes(b"")
    for name, flip in (("style", 0.9), ("dcgan", 0.8)):
        (out / name).mkdir()
        (out / name / "directions.json").write_text("{}")
        for kind in ("seeds", "photos"):
            score = {"flip_rate": flip, "n_needed": 120, "others_changed": 0.25,
                     "others_changed_each": {"Male": 0.125, "Young": 0.05, "Blond_Hair": None}}
            record = {"operations": [{"op": "make"}, {"op": "make", "score": score}]}
            if kind == "photos":
                record["photos"] = {"mean_psnr": 21.456, "seconds_per_photo": 3.5}
            (out / f"{name}-{kind}").mkdir()
            (out / f"{name}-{kind}" / "edit.json").write_text(json.dumps(record))
    env = {**os.environ, "STYLE": "runs/s", "DCGAN": "runs/d", "FACEGEN": "false", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(BENCHMARKS / "style_edits.sh"), str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [line for line in (out / "table.md").read_text().splitlines() if line.startswith("| W") or line.startswith("| z")]
    assert rows == ["| W (style32), sampled faces | 120 | 90.0 % | 12.5 % | 5.0 % | - | 25.0 % | - | - |",
                    "| W (style32), held-out photos | 120 | 90.0 % | 12.5 % | 5.0 % | - | 25.0 % | 21.46 | 3.50 |",
                    "| z (DCGAN), sampled faces | 120 | 80.0 % | 12.5 % | 5.0 % | - | 25.0 % | - | - |",
                    "| z (DCGAN), held-out photos | 120 | 80.0 % | 12.5 % | 5.0 % | - | 25.0 % | 21.46 | 3.50 |"]


def test_conditions_compares_asked_samples_with_held_out_faces_of_that_label(faces, tmp_path, capsys):
    """Each asked value's row: the judge's rate of the asked attribute among the samples, and the other condition that
    moved most from its rate among the held-out faces that carry the asked label, named and measured."""
    cfg = load_config("dcgan32", overrides=[f"data.source={faces}", "model.base_channels=4", "train.batch_size=4", "train.steps=2",
                                            "train.precision=fp32", "model.conditions=Smiling,Male"])
    run = train(cfg, tmp_path / "run", progress=False)
    assert run_cli(capsys, "judge", "train", str(faces), "--out", str(tmp_path / "judge"), "--resolution", "32", "--epochs", "1",
                   "--batch-size", "16", "--quiet")[0] == 0
    rows = conditions.asked_rates(run, tmp_path / "judge", ["Smiling"], 12)
    assert [(r["attribute"], r["asked"], r["most_moved"]) for r in rows] == [("Smiling", 1, "Male"), ("Smiling", -1, "Male")]

    judge, _ = load_judge(tmp_path / "judge")
    G, checkpoint = ckpt.load_generator(run)
    dataset = checkpoint.dataset(progress=False)
    held_out = dataset.split_indices("holdout")
    smiling = held_out[dataset.labels[held_out, dataset.attr_names.index("Smiling")] == 1]
    male, smile = judge.attr_names.index("Male"), judge.attr_names.index("Smiling")
    read = probabilities(judge, generate(G, latents(range(12), G.z_dim, G.z_dist), labels=labels_for_seeds(G, range(12), {"Smiling": 1.0})))
    real = probabilities(judge, np.asarray(dataset.images[smiling]))
    assert rows[0]["samples_as_asked"] == (read[:, smile] >= 0.5).mean()
    assert rows[0]["real_as_labelled"] == (real[:, smile] >= 0.5).mean()
    assert abs(rows[0]["largest_other_move"] - abs((read[:, male] >= 0.5).mean() - (real[:, male] >= 0.5).mean())) < 1e-9
