"""Evaluation as a user runs it: `facegen evaluate`, reference caching, protocols, quick KID in training."""

import json

import numpy as np
import pytest
from conftest import run_cli as run
from conftest import write_celeba

from facegen.config import load_config
from facegen.train import train

TINY = ["model.base_channels=4", "train.batch_size=4", "data.split=all"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Enough images for a held-out split of several (10 % by file name)."""
    return write_celeba(tmp_path_factory.mktemp("faces"), n=80)


@pytest.fixture(scope="module")
def tiny_run(faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = load_config("dcgan32", overrides=[f"data.source={faces}", *TINY, "train.steps=2", "train.kid_every=1", "train.kid_samples=6"])
    return train(cfg, out, progress=False)


def test_quick_kid_is_logged_and_the_best_checkpoint_kept(tiny_run):
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    kids = [r for r in records if "kid" in r]
    assert [r["step"] for r in kids] == [1, 2] and all(np.isfinite(r["kid"]) for r in kids)
    best = json.loads((tiny_run / "checkpoints" / "best.json").read_text())
    assert best["kid"] == pytest.approx(min(r["kid"] for r in kids), abs=1e-6)
    assert (tiny_run / "checkpoints" / "best.safetensors").is_file()


def test_evaluate_a_run_writes_eval_json_and_prints_json_last(tiny_run, capsys):
    code, out, _ = run(capsys, "evaluate", str(tiny_run), "--n", "8", "--metrics", "fid,kid,pr,is", "--json", "--quiet")
    assert code == 0
    last = json.loads(out.strip().splitlines()[-1])
    assert last == json.loads((tiny_run / "eval.json").read_text())
    assert last["n"] == 8 and last["fid"] > 0 and 0 <= last["precision"] <= 1 and last["step"] == 2
    assert last["is"] is None and "classifier" in last["is_unavailable"]  # never faked without logits
    assert last["protocol"]["resolution"] == 32 and last["protocol"]["reference"]["split"] == "holdout"
    assert "Inception Score  unavailable" in out


def test_two_identical_sources_score_zero(celeba_dir, capsys):
    code, out, _ = run(capsys, "evaluate", "--samples", str(celeba_dir), "--reference", str(celeba_dir),
                       "--resolution", "32", "--metrics", "fid,kid", "--json", "--quiet")
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and abs(result["fid"]) < 1e-3
    assert -0.05 < result["kid"] <= 0  # unbiased KID of a set against itself is -O(1/n): here 24 images


@pytest.mark.parametrize("argv, message", [
    (["--metrics", "fid,sharpness"], "unknown metric 'sharpness'; valid metrics: fid, kid, pr, is"),
    (["--n", "8", "--kid-subset", "50"], "subset"),
    (["--inception", "/no/such/inception.pt"], "/no/such/inception.pt"),
])
def test_evaluate_errors_are_one_line(argv, message, tiny_run, capsys):
    code, _, err = run(capsys, "evaluate", str(tiny_run), "--quiet", *argv)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_reference_of_another_protocol_is_refused(tiny_run, faces, capsys, tmp_path):
    from facegen.data import open_dataset
    from facegen.evaluate import reference_statistics
    from facegen.metrics import FeatureExtractor

    dataset = open_dataset(str(faces), 64, None)  # prepared at 64 px; the run is 32 px
    ref = reference_statistics(dataset, "all", 4, FeatureExtractor(), progress=False)
    path = next((dataset.path / "reference").glob("*.npz"))
    code, _, err = run(capsys, "evaluate", str(tiny_run), "--n", "4", "--reference", str(path), "--quiet")
    assert code == 2 and "protocol mismatch" in err and "resolution 64 vs 32" in err and ref.protocol["resolution"] == 64
