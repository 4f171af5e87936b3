import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from facegen.config import load_config
from facegen.report import compare_runs, plot_training, read_wall_seconds, run_names
from facegen.train import train

TINY = ["model.base_channels=4", "train.batch_size=4", "data.split=all", "train.steps=3", "train.log_every=1"]
SEEDS = range(4)  # a 2 x 2 grid of 32 px tiles with 2 px padding: 70 x 70


@pytest.fixture(scope="module")
def runs(celeba_dir, tmp_path_factory) -> dict[str, Path]:
    """Two tiny runs that differ in train.lr_g and loss.label_noise; tests copy them before changing them."""
    root = tmp_path_factory.mktemp("runs")
    base = [f"data.source={celeba_dir}", *TINY]
    return {
        "base": train(load_config("dcgan32", overrides=base), root / "base", progress=False),
        "tweaked": train(load_config("dcgan32", overrides=[*base, "train.lr_g=1e-3", "loss.label_noise=beta(1,5)"]),
                         root / "tweaked", progress=False),
    }


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def test_compare_page_shows_differences_grids_and_curves(runs, tmp_path):
    page = compare_runs([runs["base"], runs["tweaked"]], tmp_path / "cmp", seeds=SEEDS)
    text = page.read_text()
    assert page == tmp_path / "cmp" / "index.html"
    assert "base" in text and "tweaked" in text
    assert "train.lr_g" in text and "loss.label_noise" in text and "beta(1,5)" in text
    assert "model.family" in text and "data.resolution" in text  # always shown
    assert "train.batch_size" not in text and "identical configs" not in text
    assert text.count("not evaluated") == 2
    for name in ("base", "tweaked"):
        with Image.open(tmp_path / "cmp" / f"grid-{name}.png") as grid:
            assert grid.size == (4 * 70, 4 * 70) and grid.mode == "RGB"  # 2x2 faces of 32 px, enlarged 4x
    assert (tmp_path / "cmp" / "curves-loss.png").is_file() and (tmp_path / "cmp" / "curves-d.png").is_file()
    links = Links()
    links.feed(text)
    assert len(links.images) == 4 and all((tmp_path / "cmp" / src).is_file() for src in links.images)
    assert not list((tmp_path / "cmp").glob(".*"))  # no temporary files left behind


def test_compare_shows_eval_figures_and_highlights_the_best(runs, tmp_path):
    a, b = copy_run(runs["base"], tmp_path / "a"), copy_run(runs["tweaked"], tmp_path / "b")
    protocol = {"reference": {"source": "celeba", "split": "holdout"}, "resolution": 32}
    (a / "eval.json").write_text(json.dumps({"checkpoint": "ckpt-0000003.safetensors", "step": 3, "n": 2000, "fid": 45.2,
                                             "kid": 0.031, "kid_std": 0.001, "precision": 0.61, "recall": 0.32,
                                             "protocol": {**protocol, "samples": "seeds 0-1999 of ckpt-0000003.safetensors"}}))
    (b / "eval.json").write_text(json.dumps({"step": 2, "n": 2000, "fid": 50.0, "precision": 0.7,  # an older checkpoint
                                             "protocol": {**protocol, "samples": "seeds 0-1999 of ckpt-0000002.safetensors"}}))
    text = compare_runs([a, b], tmp_path / "cmp", seeds=SEEDS).read_text()
    assert "not evaluated" not in text
    assert '<td class="best">45.20</td>' in text and "<td>50.00</td>" in text  # lowest FID wins
    assert '<td class="best">0.700</td>' in text and "<td>0.610</td>" in text  # highest precision wins
    assert "0.0310 ± 0.0010" in text and "0.320" in text  # single values are shown but not highlighted
    assert "different protocols" not in text and text.count("(older checkpoint)") == 1

    (b / "eval.json").write_text(json.dumps({"step": 3, "n": 500, "fid": 50.0, "protocol": {"reference": "other"}}))
    assert "different protocols" in compare_runs([a, b], tmp_path / "cmp", seeds=SEEDS).read_text()
    (b / "eval.json").unlink()
    assert compare_runs([a, b], tmp_path / "cmp", seeds=SEEDS).read_text().count("not evaluated") == 1


def test_compare_escapes_run_names(runs, tmp_path):
    evil = copy_run(runs["base"], tmp_path / "a<script>alert('&')")
    text = compare_runs([evil, runs["tweaked"]], tmp_path / "cmp", seeds=SEEDS).read_text()
    assert "<script" not in text and "a&lt;script&gt;alert(&#x27;&amp;&#x27;)" in text
    assert (tmp_path / "cmp" / "grid-a_script_alert_____.png").is_file()


def test_compare_identical_configs_and_duplicate_names(runs, tmp_path):
    text = compare_runs([runs["base"], runs["base"]], tmp_path / "cmp", seeds=SEEDS).read_text()
    assert "identical configs" in text and "base #1" in text and "base #2" in text
    assert run_names([Path("x/run"), Path("y/run"), Path("z/other")]) == ["x/run", "y/run", "other"]


def test_compare_rejects_paths_that_are_not_finished_runs(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty is not a facegen run \(no config.json\)"):
        compare_runs([runs["base"], tmp_path / "empty"], tmp_path / "cmp")
    fresh = copy_run(runs["base"], tmp_path / "fresh")
    shutil.rmtree(fresh / "checkpoints")
    with pytest.raises(ValueError, match="fresh has no checkpoints"):
        compare_runs([fresh], tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()  # nothing is written before every run checks out


def test_compare_shows_training_time(runs, tmp_path):
    a, b = copy_run(runs["base"], tmp_path / "a"), copy_run(runs["tweaked"], tmp_path / "b")
    (tmp_path / "wall_seconds.txt").write_text("a 30\nb 7\na 125\n")
    assert read_wall_seconds(tmp_path / "wall_seconds.txt") == {"a": 125.0, "b": 7.0}
    text = compare_runs([a, b], tmp_path / "cmp", seeds=SEEDS).read_text()
    assert "2 min 05 s" in text and "7.0 s" in text and "≈" not in text
    text = compare_runs([a, b], tmp_path / "cmp", seeds=SEEDS, wall_seconds={"a": 3600}).read_text()
    assert "1 h 00 min" in text and "≈" in text  # b falls back to the throughput in metrics.jsonl


def test_plot_training_tolerates_kid_only_records(tmp_path):
    step = {"epoch": 0.1, "loss_d": 1.3, "loss_g": 0.8, "d_real": 0.6, "d_fake": 0.4, "acc_real": 0.7, "acc_fake": 0.6, "img_per_s": 50}
    records = [{"step": 1, **step}, {"step": 2, "kid": 0.2}, {"step": 2, **step}, {"step": 4, "kid": 0.1}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert plot_training(tmp_path / "metrics.jsonl", tmp_path / "training.png") == tmp_path / "training.png"
    assert Image.open(tmp_path / "training.png").size[0] > 0
    (tmp_path / "kid.jsonl").write_text(json.dumps({"step": 2, "kid": 0.2}) + "\n")
    assert plot_training(tmp_path / "kid.jsonl", tmp_path / "kid.png").is_file()
    assert plot_training(tmp_path / "missing.jsonl", tmp_path / "none.png") is None


@pytest.mark.skipif(not shutil.which("chromium"), reason="no chromium to open the page with")
def test_page_opens_in_headless_chromium(runs, tmp_path):
    page = compare_runs([runs["base"], runs["tweaked"]], tmp_path / "cmp", seeds=SEEDS)
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "grid-base.png" in dom and "not evaluated" in dom


def test_compare_shows_an_encoder_models_gmm_and_reconstruction_scores(runs, vae_run, tmp_path):
    vae = copy_run(vae_run, tmp_path / "vae")
    gan = copy_run(runs["base"], tmp_path / "gan")
    (vae / "eval.json").write_text(json.dumps({"fid": 90.0, "kid": 0.08, "kid_std": 0.001, "n": 10, "step": 3}))
    (vae / "eval-gmm.json").write_text(json.dumps({"fid": 80.0, "kid": 0.07, "kid_std": 0.002, "n": 10}))
    (vae / "eval-reconstructions.json").write_text(json.dumps({"fid": 40.0, "kid": 0.03, "mse": 0.0123, "psnr": 19.1, "n": 4}))
    (gan / "eval.json").write_text(json.dumps({"fid": 70.0, "kid": 0.06, "kid_std": 0.001, "n": 10, "step": 3}))
    text = compare_runs([vae, gan], tmp_path / "cmp", seeds=SEEDS).read_text()
    for column in ("FID (GMM prior)", "KID (GMM prior)", "recon MSE", "recon PSNR", "recon FID"):
        assert column in text
    assert "0.0700 ± 0.0020" in text and "0.0123" in text and "19.10" in text
    assert (tmp_path / "cmp" / "curves-recon.png").is_file() and (tmp_path / "cmp" / "curves-kl.png").is_file()
