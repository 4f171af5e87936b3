"""Attribute-conditional models: the labels reach the networks from the data, row for row, and checkpoints keep them."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import ATTRS, run_cli
from PIL import Image

from facegen import checkpoint as ckpt
from facegen import models
from facegen.config import load_config
from facegen.data import BatchLoader, open_dataset
from facegen.models.conditioning import ConditionalBatchNorm2d
from facegen.sample import labels_for_seeds, sample_seeds
from facegen.train import train

TINY = ["model.base_channels=4", "train.batch_size=4", "data.split=all", "data.resolution=32", "train.precision=fp32"]
STYLE = ["model.family=stylegan", "model.channel_base=64", "model.channel_max=8", "model.z_dim=8", "model.w_dim=8",
         "model.mapping_layers=1", "train.batch_size=4", "data.split=all", "data.resolution=32", "train.precision=fp32"]
FAMILIES = {"dcgan": ("dcgan32", TINY), "msggan": ("msggan32", TINY), "resnet": ("dcgan32", [*TINY, "model.family=resnet"]),
            "vae": ("vae64", [*TINY, "model.z_dim=8"]), "vaegan": ("vaegan64", [*TINY, "model.z_dim=8"]),
            "stylegan": (None, STYLE)}


@pytest.mark.parametrize("value, expected", [
    ('["Smiling", "Male"]', ("Smiling", "Male")), ("Smiling,Male", ("Smiling", "Male")), ("all", ("all",)), ("[]", ()),
])
def test_conditions_are_a_list_of_names_or_all(value, expected):
    assert load_config(overrides=[f"model.conditions={value}"]).model.conditions == expected


@pytest.mark.parametrize("value, words", [("all,Male", '"all" means every attribute'), ("Male,Male", "names an attribute twice"),
                                          ("3", "expects a list of names")])
def test_bad_conditions_are_one_line(value, words):
    with pytest.raises(ValueError, match=words):
        load_config(overrides=[f"model.conditions={value}"])


def test_an_unknown_attribute_or_a_source_without_labels_is_one_line_before_training(celeba_dir, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--preset", "dcgan32", "--data", str(celeba_dir), "--set", "model.conditions=Smiling,Bald", "--quiet",
                           "--out", str(tmp_path / "run"))
    assert code != 0 and "'Bald' not among the attributes" in err and ", ".join(ATTRS) in err and len(err.strip().splitlines()) == 1
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(8):
        Image.fromarray(np.full((32, 32, 3), 30 * i, np.uint8)).save(folder / f"{i}.png")
    code, _, err = run_cli(capsys, "train", "--preset", "dcgan32", "--data", str(folder), "--set", "model.conditions=all", "--quiet",
                           "--out", str(tmp_path / "run2"))
    assert code != 0 and "needs attribute labels" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "run2").exists()


def test_the_loader_deals_each_image_with_its_own_labels_mirrored_or_not(celeba_dir):
    dataset = open_dataset(str(celeba_dir), 32, progress=False)
    labels = dataset.labels[:, [2, 0]]  # Smiling, Eyeglasses
    row_of = {image.tobytes(): i for i, image in enumerate(dataset.images)}
    for mirror in (False, True):
        loader = BatchLoader(dataset.images, dataset.split_indices("all"), 4, seed=3, mirror=mirror, labels=labels)
        for step in range(6):
            images, y = loader.batch(step).numpy(), loader.batch_labels(step)
            rows = [row_of.get(image.tobytes(), row_of.get(image[:, ::-1].tobytes())) for image in images]
            assert torch.equal(y, torch.from_numpy(labels[rows].astype(np.float32)))
            assert torch.equal(y, loader.batch_labels(step))  # a pure function of the step
    drawn = loader.random_labels(50, torch.Generator().manual_seed(0))
    assert drawn.shape == (50, 2) and set(drawn.flatten().tolist()) <= {-1.0, 1.0}
    assert torch.equal(drawn, loader.random_labels(50, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("family", ["dcgan", "msggan", "resnet", "vae", "vaegan", "stylegan"])
def test_every_family_builds_conditional_networks_that_read_the_labels(family):
    small = {"stylegan": {"channel_base": 64, "channel_max": 8, "w_dim": 8, "mapping_layers": 1}}.get(family, {"base_channels": 4})
    torch.manual_seed(0)
    nets = models.build(family, resolution=32, z_dim=8, num_conditions=3, **small)
    G, D = nets["G"], nets.get("D")
    z, y = torch.randn(4, 8), torch.tensor([[1.0, -1, 1], [-1, 1, -1], [1, 1, 1], [0, 0, 0]])
    for module in G.modules():  # a conditional G's gains and biases start at 1 and 0: it starts as an unconditional one
        if isinstance(module, ConditionalBatchNorm2d):
            module.gain.weight.data.normal_()
    images = G(z, y)
    image = images[-1] if isinstance(images, list) else images
    assert image.shape == (4, 3, 32, 32)
    assert not torch.allclose(image, (G(z, -y)[-1] if isinstance(images, list) else G(z, -y)))  # the labels matter
    if D is not None:
        logits = D(images, y)
        logits = logits[0] if isinstance(logits, tuple) else logits
        assert logits.shape == (4,)
    if "E" in nets:
        mu, logvar = nets["E"](image, y)
        assert mu.shape == (4, 8)


def test_a_projection_head_adds_nothing_for_unspecified_labels():
    torch.manual_seed(0)
    D = models.build("dcgan", resolution=32, base_channels=4, num_conditions=3)["D"].eval()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    assert torch.allclose(D(x, torch.zeros(4, 3)), D.net(x).squeeze(1))
    assert not torch.allclose(D(x, torch.ones(4, 3)), D.net(x).squeeze(1))


# Each family's weights after 20 fixed-seed fp32 steps on celeba_dir without conditions, summed and squared-summed per
# net, as the code before issue 48 (commit 4a5841e) left them; on the machine that made them, main's weights equal that
# commit's bit for bit (torch.equal, every tensor). The tolerance allows other CPUs' rounding; any change of draws,
# parameters or order moves these sums by whole units.
BEFORE_CONDITIONS = {
    "dcgan": {"G": (31.917243, 39.732584), "D": (25.463568, 25.315656)},
    "msggan": {"G": (35.455675, 44.116766), "D": (23.145902, 25.466547)},
    "resnet": {"G": (75.494098, 407.584722), "D": (2.126526, 116.229632)},
    "vae": {"E": (29.673896, 31.865441), "G": (32.171495, 30.349069)},
    "vaegan": {"E": (30.044317, 31.749234), "G": (28.94866, 29.888127), "D": (20.494196, 25.19767),
               "E_ema": (29.992234, 31.74137), "G_ema": (28.958793, 29.887665)},
    "stylegan": {"G": (651.717581, 706292.600315), "D": (-69.628494, 3530.608239)},
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_an_unconditional_run_trains_the_weights_it_trained_before_conditions_existed(family, celeba_dir, tmp_path):
    preset, tiny = FAMILIES[family]
    nets = ckpt.load(train(load_config(preset, overrides=[f"data.source={celeba_dir}", *tiny, "train.steps=20"]), tmp_path,
                           progress=False)).nets
    for role, (total, squares) in BEFORE_CONDITIONS[family].items():
        weights = torch.cat([v.double().flatten() for v in nets[role].values() if v.is_floating_point()])
        assert (weights.sum().item(), weights.square().sum().item()) == pytest.approx((total, squares), rel=1e-4, abs=1e-3), role
    assert set(nets) == set(BEFORE_CONDITIONS[family])


@pytest.fixture(scope="module")
def conditional_runs(faces, tmp_path_factory):
    """2-step runs of every family on the 80 labelled fixture faces, conditioned on Smiling and Male."""
    root = tmp_path_factory.mktemp("conditional")
    out = {}
    for family, (preset, tiny) in FAMILIES.items():
        cfg = load_config(preset, overrides=[f"data.source={faces}", *tiny, "model.conditions=Smiling,Male", "train.steps=2"])
        out[family] = train(cfg, root / family, progress=False)
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_trains_on_its_labels_and_the_checkpoint_keeps_their_names(conditional_runs, family):
    state = ckpt.load(conditional_runs[family])
    assert state.state["conditions"] == ["Smiling", "Male"] and state.architecture["num_conditions"] == 2
    assert state.state["condition_labels"].shape[1] == 2
    role = "G_ema" if "G_ema" in state.nets else "G"
    G = state.build((role,))[role]
    assert torch.equal(G.label_table, state.state["condition_labels"])
    faces = sample_seeds(G, [3, 5])
    assert (faces[1] == sample_seeds(G, [5])[0]).all()  # seed 5's labels and face, whatever the batch
    assert labels_for_seeds(G, [5]).shape == (1, 2)


def test_a_conditional_run_resumes_exactly(celeba_dir, tmp_path):
    def run(steps, resume=False):
        cfg = load_config("dcgan32", overrides=[f"data.source={celeba_dir}", *TINY, "model.conditions=all", f"train.steps={steps}",
                                                "train.checkpoint_every=2"])
        return train(cfg, tmp_path / ("b" if resume or steps == 2 else "a"), resume=resume, progress=False)

    straight = run(4)
    run(2)
    resumed = run(4, resume=True)
    a, b = ckpt.load(straight), ckpt.load(resumed)
    assert a.state["conditions"] == ATTRS
    for role in a.nets:
        for name, value in a.nets[role].items():
            assert torch.equal(value, b.nets[role][name]), f"{role}.{name}"


def test_sampling_on_request_sets_the_asked_attributes_and_draws_the_rest_from_agreeing_faces(conditional_runs, capsys, tmp_path,
                                                                                               monkeypatch):
    run = conditional_runs["dcgan"]
    code, out, err = run_cli(capsys, "sample", str(run), "--attributes", "Smiling=1", "--n", "4", "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert len(list((tmp_path / "a").glob("*.png"))) == 4
    G, _ = ckpt.load_generator(run)
    y = labels_for_seeds(G, range(30), {"Smiling": 1.0})
    assert (y[:, 0] == 1).all() and set(y[:, 1].tolist()) <= {-1.0, 1.0}
    table = G.label_table.float()
    assert all(((table == row).all(dim=1) & (table[:, 0] == 1)).any() for row in y)  # each a smiling training face's row
    assert (table[:, 0] == 1).sum() >= 20  # enough smiling faces among the 80 to draw from them alone
    monkeypatch.setattr("facegen.sample.MIN_AGREEING", 10**6)  # too few agree: all faces, and a warning
    y = labels_for_seeds(G, range(30), {"Smiling": 1.0, "Male": -1.0})
    assert "training faces have Smiling=+1, Male=-1" in capsys.readouterr().err and (y == torch.tensor([1.0, -1.0])).all()


def test_sampling_on_request_refuses_what_the_model_cannot_give(conditional_runs, celeba_dir, capsys, tmp_path):
    code, _, err = run_cli(capsys, "sample", str(conditional_runs["dcgan"]), "--attributes", "Bald=1")
    assert code != 0 and "'Bald' is not among the attributes this model learnt: Smiling, Male" in err
    plain = train(load_config("dcgan32", overrides=[f"data.source={celeba_dir}", *TINY, "train.steps=1"]), tmp_path / "plain",
                  progress=False)
    code, _, err = run_cli(capsys, "sample", str(plain), "--attributes", "Smiling=1")
    assert code != 0 and "fast32-cond" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "sample", str(plain), "--attributes", "Smiling=yes")
    assert code != 0 and "NAME=1" in err


def test_photos_of_a_conditional_model_take_their_labels_from_the_data_or_else_the_judge(conditional_runs, faces, capsys, tmp_path):
    run = conditional_runs["dcgan"]
    code, _, err = run_cli(capsys, "interpolate", str(run), "--seeds", "0,1", "--out", str(tmp_path / "i.png"))
    assert code == 0, err
    photo = next((faces / "img_align_celeba").glob("*.jpg"))
    code, out, err = run_cli(capsys, "edit", str(run), "--images", str(photo), "--set", "Smiling=1", "--refine-steps", "2",
                             "--out", str(tmp_path / "p"))
    assert code == 0, err
    record = json.loads((tmp_path / "p" / "edit.json").read_text())
    assert "from the data's label file" in out and record["photos"]["labels"] == "the data's label file"
    outside = tmp_path / "me.jpg"  # the same face under a name the data does not have
    shutil.copyfile(photo, outside)
    code, _, err = run_cli(capsys, "edit", str(run), "--images", str(outside), "--set", "Smiling=1", "--out", str(tmp_path / "q"))
    assert code != 0 and "add --judge DIR" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "q").exists()
    assert run_cli(capsys, "judge", "train", str(faces), "--out", str(tmp_path / "judge"), "--resolution", "32", "--epochs", "1",
                   "--batch-size", "16", "--quiet")[0] == 0
    code, out, err = run_cli(capsys, "edit", str(run), "--images", str(outside), "--set", "Smiling=1", "--refine-steps", "2",
                             "--judge", str(tmp_path / "judge"), "--out", str(tmp_path / "q"))
    assert code == 0, err
    assert f"from the judge {tmp_path / 'judge'}" in out and (tmp_path / "q" / "edits.png").is_file()
    code, out, err = run_cli(capsys, "reconstruct", str(conditional_runs["vae"]), "--holdout", "2", "--out", str(tmp_path / "r.png"),
                             "--quiet")
    assert code == 0, err
    assert "labels of the faces (Smiling, Male) from the data's label file" in out


@pytest.mark.parametrize("family", ["dcgan", "stylegan"])
def test_edit_by_attributes_keeps_the_latent_and_changes_the_label(conditional_runs, family, capsys, tmp_path):
    from facegen import latent

    run = conditional_runs[family]
    code, out, err = run_cli(capsys, "edit", str(run), "--seeds", "0-3", "--set", "Smiling=1", "--set", "Male=-1",
                             "--out", str(tmp_path / "e"))
    assert code == 0, err
    assert (tmp_path / "e" / "edits.png").is_file()
    model = latent.open_model(run)
    y = model.labels_of_seeds(range(4))
    flipped = y.clone()
    flipped[:, 0] = -y[:, 0]
    assert not (model.images(model.latents_of_seeds(range(4), flipped), flipped) == model.images(model.latents_of_seeds(range(4)), y)).all()
    code, _, err = run_cli(capsys, "edit", str(run), "--seeds", "0", "--set", "Bald=1", "--out", str(tmp_path / "x"))
    assert code != 0 and "this model learnt Smiling, Male" in err
    code, _, err = run_cli(capsys, "edit", str(run), "--seeds", "0", "--set", "Smiling=maybe", "--out", str(tmp_path / "x"))
    assert code != 0 and "a label is 1 (present), -1 (absent) or 0" in err


def test_set_on_an_unconditional_run_says_what_to_do_instead(celeba_dir, capsys, tmp_path):
    plain = train(load_config("dcgan32", overrides=[f"data.source={celeba_dir}", *TINY, "train.steps=1"]), tmp_path / "plain",
                  progress=False)
    code, _, err = run_cli(capsys, "edit", str(plain), "--seeds", "0", "--set", "Smiling=1", "--out", str(tmp_path / "x"))
    assert code != 0 and "trained without model.conditions" in err and len(err.strip().splitlines()) == 1


def test_the_explorer_toggles_a_conditional_run_s_labels(conditional_runs):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facegen.web.app import create_app

    client = TestClient(create_app([conditional_runs["dcgan"].parent]))
    rid = next(r["id"] for r in client.get("/api/runs").json()["runs"] if r["name"].endswith("dcgan"))
    assert client.get(f"/api/runs/{rid}").json()["conditions"] == ["Smiling", "Male"]
    face = {"seed": 2}
    plain = client.post(f"/api/runs/{rid}/edit", json={"face": face}).json()["image"]
    smiling = client.post(f"/api/runs/{rid}/edit", json={"face": face, "set": {"Smiling": 1}}).json()["image"]
    frowning = client.post(f"/api/runs/{rid}/edit", json={"face": face, "set": {"Smiling": -1}}).json()["image"]
    assert plain in (smiling, frowning) and smiling != frowning
    bad = client.post(f"/api/runs/{rid}/edit", json={"face": face, "set": {"Bald": 1}})
    assert bad.status_code == 400 and "learnt: Smiling, Male" in bad.json()["error"]
