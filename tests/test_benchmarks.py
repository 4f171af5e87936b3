"""benchmarks/quality_budget.py's bookkeeping: a run split over invocations ends in one table."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


sys.path.insert(0, str(BENCHMARKS))  # the script imports train_speed beside it
_spec = importlib.util.spec_from_file_location("quality_budget", BENCHMARKS / "quality_budget.py")
qb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qb)


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
