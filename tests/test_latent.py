"""Latent tools from a checkpoint alone: interpolation, directions, edits, photos, scoring."""

import json

import numpy as np
import pytest
import torch
from conftest import run_cli as run
from PIL import Image

from facegen import latent
from facegen.config import load_config
from facegen.train import train

TINY = ["model.base_channels=4", "train.batch_size=4", "data.resolution=32", "model.z_dim=8"]


@pytest.fixture(scope="module")
def gan_run(faces, tmp_path_factory):
    cfg = load_config("dcgan32", overrides=[f"data.source={faces}", *TINY, "train.steps=2"])
    return train(cfg, tmp_path_factory.mktemp("runs") / "gan", progress=False)


@pytest.fixture(scope="module")
def judge_dir(faces, tmp_path_factory):
    from facegen.judge import train_judge

    out = tmp_path_factory.mktemp("judge")
    train_judge(str(faces), out, resolution=32, epochs=1, batch_size=8, base_channels=4, progress=False)
    return out


def test_slerp_and_lerp_return_their_endpoints_and_keep_slerp_on_the_sphere():
    a, b = torch.randn(16), torch.randn(16)
    for mix in (latent.lerp, latent.slerp):
        assert torch.allclose(mix(a, b, 0.0), a, atol=1e-6) and torch.allclose(mix(a, b, 1.0), b, atol=1e-5)
    u, v = a / a.norm(), b / b.norm()
    assert latent.slerp(u, v, 0.37).norm().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(latent.slerp(a, a, 0.5), a)  # parallel: no division by sin(0)
    path = latent.interpolate(torch.stack([a, b, a]), steps=5)
    assert len(path) == 9 and torch.equal(path[4], b) and torch.equal(path[-1], a)


def test_removal_by_projection_leaves_no_component_and_label_removal_lands_on_the_boundary():
    e = torch.nn.functional.normalize(torch.randn(8), dim=0)
    z = torch.randn(5, 8)
    picked = latent.Direction("x", e, "seeds", 3, "seeds 1,2,3")
    assert torch.allclose(latent.remove(z, picked) @ e, torch.zeros(5), atol=1e-6)
    boundary = latent.Direction("y", e, "labels", 10, "test", spread=2.0, offset=0.7)
    assert torch.allclose(latent.remove(z, boundary, margin=0.0) @ e + 0.7, torch.minimum(z @ e + 0.7, torch.zeros(5)), atol=1e-6)
    past = latent.remove(z, boundary, margin=1.0) @ e + 0.7  # one spread (2.0) past the boundary, or further already
    assert torch.all(past <= -2.0 + 1e-5) and torch.allclose(past, torch.minimum(z @ e + 0.7, torch.full((5,), -2.0)), atol=1e-5)
    assert torch.allclose((latent.add(z, boundary, 1.5) - z) @ e, torch.full((5,), 3.0), atol=1e-5)  # units of spread


def test_make_moves_only_the_faces_on_the_wrong_side_to_the_margin():
    e = torch.nn.functional.normalize(torch.randn(8), dim=0)
    z = torch.randn(50, 8)
    d = latent.Direction("y", e, "labels", 10, "test", spread=0.5, offset=0.2)
    def distance(w):  # in spreads
        return (w @ e + 0.2) / 0.5

    made, far_enough = latent.make(z, d, present=True, margin=1.0), distance(z) >= 1.0
    assert torch.allclose(distance(made), torch.clamp(distance(z), min=1.0), atol=1e-5)
    assert 0 < far_enough.sum() < 50 and torch.equal(made[far_enough], z[far_enough])  # those already there do not move
    assert torch.equal(latent.make(z, d, present=False, margin=1.0), latent.remove(z, d, margin=1.0))
    with pytest.raises(ValueError, match="only label directions have a boundary"):
        latent.make(z, latent.Direction("x", e, "seeds", 3, "seeds 1,2,3"), present=True)


def test_an_edits_control_moves_each_face_as_far_at_random_and_the_same_way_twice():
    z = torch.randn(6, 8)
    edited = z.clone()
    edited[:4] += torch.randn(4, 8) * torch.arange(1.0, 5.0)[:, None]  # the last two faces stay put, like --make's
    control = latent.random_moves(z, edited)
    assert torch.allclose((control - z).norm(dim=1), (edited - z).norm(dim=1), atol=1e-5)
    assert torch.equal(control[4:], z[4:]) and torch.equal(control, latent.random_moves(z, edited))
    cosines = torch.nn.functional.cosine_similarity(control[:4] - z[:4], edited[:4] - z[:4], dim=1)
    assert cosines.abs().max() < 0.99  # not the edit's own direction


def test_conditioned_edits_cross_the_attributes_own_boundary_and_leave_the_condition_alone():
    normal, other = torch.nn.functional.normalize(torch.randn(2, 12), dim=1)
    vector = latent.condition(normal, [other])
    d = latent.Direction("y", vector, "labels", 10, "test", spread=0.5, offset=-0.3, normal=normal)
    z = torch.randn(6, 12)
    def distance(w):  # in spreads
        return (w @ normal - 0.3) / 0.5

    assert torch.allclose(distance(latent.add(z, d, 2.0)) - distance(z), torch.full((6,), 2.0), atol=1e-4)
    assert torch.allclose(latent.add(z, d, 2.0) @ other, z @ other, atol=1e-5)
    removed = latent.remove(z, d, margin=1.0)
    assert torch.all(distance(removed) <= -1.0 + 1e-4) and torch.allclose(removed @ other, z @ other, atol=1e-5)


def test_conditioning_makes_a_direction_orthogonal_to_the_others():
    a, b, c = torch.randn(3, 10)
    conditioned = latent.condition(a, [b, c])
    assert conditioned.norm().item() == pytest.approx(1.0) and abs(torch.dot(conditioned, b)) < 1e-5 and abs(torch.dot(conditioned, c)) < 1e-5


def test_interpolation_gif_has_the_asked_number_of_frames(gan_run, capsys, tmp_path):
    code, out, _ = run(capsys, "interpolate", str(gan_run), "--seeds", "3,17,4", "--steps", "6", "--slerp", "--out", str(tmp_path / "a.gif"))
    assert code == 0 and "11 slerp frames" in out
    assert Image.open(tmp_path / "a.gif").n_frames == 11
    code, _, _ = run(capsys, "interpolate", str(gan_run), "--seeds", "3,17", "--steps", "4", "--out", str(tmp_path / "a.png"))
    assert code == 0 and Image.open(tmp_path / "a.png").size == (4 * (4 * 34 + 2), 4 * (34 + 2))  # enlarged 4x: 32 px faces
    code, _, _ = run(capsys, "interpolate", str(gan_run), "--seeds", "3,17", "--steps", "4", "--zoom", "1", "--out", str(tmp_path / "b.png"))
    assert code == 0 and Image.open(tmp_path / "b.png").size == (4 * 34 + 2, 34 + 2)
    assert Image.open(tmp_path / "a.gif").size == (4 * 32, 4 * 32)  # GIF frames enlarged alike


def test_directions_from_seeds_edit_the_same_way_twice_and_mean_image(gan_run, capsys, tmp_path):
    code, out, _ = run(capsys, "directions", str(gan_run), "--from-seeds", "Sunglasses=3,17,42", "--sefa", "2")
    assert code == 0 and "Sunglasses" in out and "sefa0" in out
    index = json.loads((gan_run / latent.DIRECTIONS_INDEX).read_text())
    assert index["Sunglasses"]["method"] == "seeds" and index["Sunglasses"]["n"] == 3 and "date" in index["Sunglasses"]
    for out_dir in ("e1", "e2"):
        code, _, _ = run(capsys, "edit", str(gan_run), "--seeds", "0-3", "--add", "Sunglasses=2", "--remove", "Sunglasses",
                         "--walk", "sefa0", "--range", "-2,2", "--steps", "5", "--mean-of", "Sunglasses", "--out", str(tmp_path / out_dir))
        assert code == 0
    for name in ("edits.png", "walk-sefa0.png", "mean-Sunglasses.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "e1" / name)), np.asarray(Image.open(tmp_path / "e2" / name)))
    assert Image.open(tmp_path / "e1" / "edits.png").size == (4 * (3 * 34 + 2), 4 * (4 * 34 + 2))  # original, add, remove; 4x
    assert Image.open(tmp_path / "e1" / "mean-Sunglasses.png").size == (32, 32)  # a single face stays at the model's size
    record = json.loads((tmp_path / "e1" / "edit.json").read_text())
    assert [op["op"] for op in record["operations"]] == ["add", "remove", "walk", "mean"]
    assert record["operations"][2]["strengths"] == [-2.0, -1.0, 0.0, 1.0, 2.0]  # a negative --range LOW reads as a value


def test_edit_errors_are_one_line(gan_run, vae_run, capsys, tmp_path):
    run(capsys, "directions", str(gan_run), "--from-seeds", "Sunglasses=1,2")
    cases = [
        ([str(gan_run), "--seeds", "0-1", "--add", "Smiles=1"], "unknown direction 'Smiles'; this run has: Sunglasses"),
        ([str(vae_run), "--seeds", "0-1", "--add", "Smiling=1"], "has no directions"),
        ([str(gan_run), "--seeds", "0-1", "--add", "Sunglasses=lots"], "'lots' is not a number"),
        ([str(gan_run), "--seeds", "0-1"], "edit needs something to do"),
        ([str(gan_run), "--seeds", "0-1", "--make", "Sunglasses=maybe"], "'maybe' is not yes or no"),
        ([str(gan_run), "--seeds", "0-1", "--make", "Sunglasses=no"], "only label directions (--from-labels) have a boundary"),
        ([str(gan_run), "--seeds", "0-1", "--remove", "Sunglasses", "--hold-within", "-1"], "--hold-within -1.0: a distance in logits"),
    ]
    (tmp_path / "notes.txt").write_text("not a face")
    cases.append(([str(gan_run), "--images", str(tmp_path / "notes.txt"), "--add", "Sunglasses=1"], "is not an image Pillow can read"))
    for argv, message in cases:
        code, _, err = run(capsys, "edit", *argv, "--out", str(tmp_path / "x"))
        assert code == 2 and err.count("\n") == 1 and message in err, (argv, err)


def test_label_directions_for_an_encoder_model_use_the_true_labels(vae_run, capsys):
    code, out, err = run(capsys, "directions", str(vae_run), "--from-labels", "Smiling", "Eyeglasses", "--condition", "Male", "--quiet")
    assert code == 0 and "held-out accuracy" in out and "add --judge DIR for the default field" in err
    directions = latent.load_directions(vae_run)
    assert directions["Smiling"].method == "labels" and "encoded training faces" in directions["Smiling"].source
    male = latent.directions_from_labels(latent.open_model(vae_run), ["Male"], progress=False)["Male"]
    assert abs(torch.dot(directions["Smiling"].vector, male.vector)) < 1e-4  # conditioned on Male
    code, _, err = run(capsys, "directions", str(vae_run), "--from-labels", "Smile", "--quiet")
    assert code == 2 and "unknown attribute 'Smile'" in err and "Smiling" in err


def brightness(judge, images, batch_size=256):
    """A stand-in judge: a 1-epoch judge calls every 2-step sample alike, so this one sees every attribute in the
    brighter half instead, and the labels are known and both kinds exist."""
    mean = images.reshape(len(images), -1).mean(1)
    p = (mean.argsort().argsort() + 0.5) / len(images)
    return np.repeat(p[:, None], len(judge.attr_names), axis=1)


@pytest.mark.parametrize("nonlinear", [False, True])
def test_directions_that_can_be_made_are_made_and_the_one_sided_one_is_named(gan_run, judge_dir, capsys, monkeypatch, nonlinear):
    import facegen.judge

    def no_glasses(judge, images, batch_size=256):  # nobody is judged to wear glasses
        p = brightness(judge, images)
        p[:, judge.attr_names.index("Eyeglasses")] = 0.01
        return p

    monkeypatch.setattr(facegen.judge, "probabilities", no_glasses)
    model = latent.open_model(gan_run)
    made = latent.directions_from_labels(model, ["Smiling", "Eyeglasses", "Male"], judge_dir, n=64, tail=0.0,
                                         nonlinear=nonlinear, progress=False)
    assert sorted(made) == ["Male", "Smiling"]
    err = capsys.readouterr().err
    assert "skipped Eyeglasses (direction): all 64 labelled latents are negative" in err and "label more samples (--n)" in err
    made = latent.directions_from_labels(model, ["Smiling"], judge_dir, n=64, tail=0.0, conditions=["Eyeglasses"], progress=False)
    assert "skipped Eyeglasses (condition)" in capsys.readouterr().err and "conditioned" not in made["Smiling"].source
    with pytest.raises(ValueError, match="Eyeglasses: all 64 labelled latents are negative"):
        latent.directions_from_labels(model, ["Eyeglasses"], judge_dir, n=64, tail=0.0, progress=False)


def test_label_directions_for_a_gan_use_the_judge_and_edits_are_scored(gan_run, judge_dir, capsys, tmp_path, monkeypatch):
    code, _, err = run(capsys, "directions", str(gan_run), "--from-labels", "Male", "--quiet")
    assert code == 2 and "--judge" in err
    import facegen.judge

    monkeypatch.setattr(facegen.judge, "probabilities", brightness)
    model = latent.open_model(gan_run)
    made = latent.directions_from_labels(model, ["Male"], judge_dir, n=200, tail=0.0, progress=False)
    latent.save_directions(gan_run, {**latent.load_directions(gan_run, required=False), **made})
    assert "judge" in made["Male"].source and made["Male"].n == 200
    monkeypatch.setattr(latent, "trusted_attributes", lambda checkpoint: list(checkpoint.state["accuracy"]))  # 1 epoch trusts none
    code, out, _ = run(capsys, "edit", str(gan_run), "--seeds", "0-7", "--add", "Male=3", "--make", "Male=no", "--score",
                       "--judge", str(judge_dir), "--out", str(tmp_path / "scored"))
    assert code == 0 and "Inception cosine" in out
    added, made = json.loads((tmp_path / "scored" / "edit.json").read_text())["operations"]
    assert 0 <= added["score"]["flip_rate"] <= 1 and -1 <= added["score"]["inception_cosine"] <= 1
    assert 0 <= added["score"]["others_changed_control"] <= 1 and "when moved as far at random" in out
    # Side effects count only the faces an edit moved: all of them for --add, those short of the margin for --make.
    z, d = model.latents_of_seeds(range(8)), latent.load_directions(gan_run)["Male"]
    short = int(((z @ d.boundary_normal() + d.offset) / d.spread > -1.0).sum())
    assert added["score"]["n_moved"] == 8 and made["present"] is False and made["score"]["n_moved"] == short
    monkeypatch.setattr(facegen.judge, "probabilities", lambda judge, images, batch_size=256: np.ones((len(images), len(judge.attr_names))))
    for nonlinear in (False, True):
        with pytest.raises(ValueError, match="^Male: all 200 labelled latents are positive"):
            latent.directions_from_labels(model, ["Male"], judge_dir, n=200, nonlinear=nonlinear, progress=False)


def test_labels_of_the_edited_feature_are_neither_held_nor_counted_as_side_effects(monkeypatch):
    """A beard drawn with a mustache is still a perfect beard edit: Mustache is reported apart, not as a side effect,
    and a No_Beard direction is not held to it."""
    import facegen.judge

    names = ["No_Beard", "Mustache", "Male", "Smiling"]
    seen = {0: [1, 0, 1, 0], 1: [1, 0, 1, 1], 2: [0, 1, 1, 0], 3: [0, 0, 1, 0], 4: [0, 1, 1, 1], 5: [0, 0, 1, 0]}  # face id -> labels
    monkeypatch.setattr(facegen.judge, "predict", lambda judge, images, batch_size=256: np.array([seen[int(i)] for i in images[:, 0, 0, 0]], bool))
    judge = type("Judge", (), {"attr_names": names})()
    before, after = np.zeros((4, 1, 1, 3), np.uint8), np.zeros((4, 1, 1, 3), np.uint8)
    before[:, 0, 0, 0], after[:, 0, 0, 0] = [0, 0, 1, 1], [2, 3, 4, 5]
    score = latent.score_edit(judge, names, before, after, "No_Beard", False, np.ones(4, bool))
    assert score["flip_rate"] == 1.0 and score["own_feature"] == ["Mustache"] and score["own_feature_changed"] == 0.5
    assert score["others_changed"] == 1 / 8  # Smiling changed on 1 of 4 faces, Male on none
    assert set(score["others_changed_each"]) == {"Mustache", "Male", "Smiling"}
    assert latent.conditions_of("No_Beard", ["Male", "Mustache", "Goatee", "No_Beard", "Smiling", "Male"]) == ["Male", "Smiling"]


def test_an_encoder_models_boundary_is_fitted_to_posterior_draws_not_means(vae_run, monkeypatch):
    """Dimension 1 is one a VAE leaves at the prior: its means separate the labels exactly but sit deep inside
    the posterior noise, which the decoder ignores. Dimension 0 carries the attribute in the means the noise
    leaves alone. Fitted to draws from the posterior, the boundary leans on dimension 0; fitted to the means
    (the old way), it leaned on dimension 1 and edits along it changed nothing."""
    import facegen.encoding

    model = latent.open_model(vae_run)
    dataset = model.checkpoint.dataset(progress=False)
    smiling = dataset.labels[dataset.spread_indices("train", 4000), dataset.attr_names.index("Smiling")] > 0
    assert 0 < smiling.sum() < len(smiling)
    sign = np.where(smiling, 0.5, -0.5)
    active = sign + np.random.default_rng(1).normal(0, 0.3, len(sign))
    means = np.stack([active, sign], axis=1).astype(np.float32)
    logvar = np.stack([np.full(len(sign), -8.0), np.zeros(len(sign))], axis=1).astype(np.float32)
    monkeypatch.setattr(facegen.encoding, "posterior", lambda E, images, labels=None: (means, logvar))
    direction = latent.directions_from_labels(model, ["Smiling"], progress=False)["Smiling"]
    assert abs(direction.vector[0]) > 2 * abs(direction.vector[1])
    fitted_to_means, _, _ = latent.fit_boundary(means, smiling)
    assert abs(fitted_to_means[1]) > abs(fitted_to_means[0])  # what the old way leaned on
    assert "posterior draws" in direction.source and direction.spread > (means @ direction.vector.numpy()).std()


def test_photos_are_encoded_or_projected_with_their_error(gan_run, vae_run, faces, capsys, tmp_path):
    photo = str(faces / "img_align_celeba" / "000002.jpg")
    for run_dir, how in ((vae_run, "encoder mean"), (gan_run, "projection")):
        code, out, _ = run(capsys, "interpolate", str(run_dir), "--images", f"{photo},{photo}", "--steps", "3",
                           "--refine-steps", "3" if how == "projection" else "0", "--out", str(tmp_path / "p.png"))
        assert code == 0 and f"photos found by {how}" in out and "PSNR" in out


def test_edits_of_held_out_faces_start_from_their_encodings(vae_run, capsys, tmp_path):
    import shutil

    run_dir = tmp_path / "vae"  # a copy: the directions made here stay out of the shared run
    shutil.copytree(vae_run, run_dir)
    assert run(capsys, "directions", str(run_dir), "--from-seeds", "Up=1,2,3")[0] == 0
    code, out, _ = run(capsys, "edit", str(run_dir), "--holdout", "3", "--add", "Up=1", "--zoom", "1", "--out", str(tmp_path / "e"))
    assert code == 0 and "3 photos found by encoder mean" in out
    record = json.loads((tmp_path / "e" / "edit.json").read_text())
    assert record["faces"] == "the first 3 held-out faces" and len(record["photos"]["psnr"]) == 3
    dataset = latent.open_model(run_dir).checkpoint.dataset(progress=False)
    held_out = dataset.images[dataset.split_indices("holdout")[:3]]
    grid = np.asarray(Image.open(tmp_path / "e" / "edits.png").convert("RGB"))  # a row per face: original, encoded, edited
    for row, face in enumerate(held_out):  # 32 px tiles, 2 px apart
        top = 2 + row * 34
        np.testing.assert_array_equal(grid[top : top + 32, 2:34], face)
    code, _, err = run(capsys, "edit", str(run_dir), "--holdout", "0", "--add", "Up=1", "--out", str(tmp_path / "f"))
    assert code == 2 and "at least one held-out face" in err


def test_projection_finds_a_latent_the_generator_made(gan_run):
    model = latent.open_model(gan_run)
    target_z = model.latents_of_seeds([5])
    found = latent.project(model, model.images(target_z), steps=150, starts=2, lr=0.1)
    start = model.latents_of_seeds([latent.PROJECTION_SEEDS])
    error = lambda z: np.abs(model.images(z).astype(int) - model.images(target_z).astype(int)).mean()  # noqa: E731
    assert error(found) < error(start)


def test_train_encoder_for_a_gan_is_saved_and_used(gan_run, capsys):
    code, out, _ = run(capsys, "train-encoder", str(gan_run), "--steps", "3", "--batch-size", "4", "--quiet")
    assert code == 0 and (gan_run / latent.ENCODER_FILE).is_file()
    assert latent.open_model(gan_run).E is not None
    (gan_run / latent.ENCODER_FILE).unlink()  # leave the shared run as the other tests expect it


def ring_latents(n: int = 3000) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Latents whose "Ring" attribute (|z[:2]| > 1.2) no plane separates, and a condition on z[2]; ten dimensions, so
    that every face can reach the ring while keeping its norm (edits stay on the prior's shell)."""
    z = np.random.default_rng(0).standard_normal((n, 10)).astype(np.float32)
    return z, {"Ring": (np.linalg.norm(z[:, :2], axis=1) > 1.2).astype(np.float32), "Other": (z[:, 2] > 0).astype(np.float32)}


def test_a_field_separates_what_no_plane_can_and_moves_each_face_across_it():
    z, targets = ring_latents()
    _, _, plane_accuracy = latent.fit_boundary(z, targets["Ring"] > 0.5)
    d = latent.field_directions(z, targets, ["Ring"], ["Other"], "test")["Ring"]
    assert d.method == "field" and d.has_boundary and d.spread == 1.0 and d.accuracy > 0.9 and plane_accuracy < 0.7
    assert "conditioned on Other" in d.source and d.vector.norm().item() == pytest.approx(1.0)
    field = latent.AttributeField.from_weights(d.weights)
    score = lambda w: field(w)[:, 0]  # noqa: E731  (in logits, the unit of a field)
    start = torch.from_numpy(z[:40])
    made = latent.make(start, d, present=True, margin=2.0, hold_within=float("inf"))  # its condition held everywhere
    already = score(start) >= 2.0
    # A damped climb may leave a face a little short of its goal, never far.
    assert (score(made) >= 2.0 - 0.02).float().mean() >= 0.95 and score(made).min() >= 1.5
    assert torch.equal(made[already], start[already]) and 0 < already.sum() < 40
    assert (made[:, :2].norm(dim=1) > 1.2).float().mean() >= 0.9  # the true attribute, not only the field's reading
    assert torch.allclose(made.norm(dim=1), start.norm(dim=1), atol=0.02)  # kept on the prior's shell
    removed = latent.remove(start, d, margin=3.0)
    assert torch.all(score(removed) <= -3.0 + 0.02) and torch.all(removed[:, :2].norm(dim=1) < 1.2)
    assert torch.allclose(score(latent.add(start, d, 0.5)) - score(start), torch.full((40,), 0.5), atol=0.02)
    # Conditioned face by face, the drift of the curved path corrected: the condition's logit ends where it started,
    # where the unconditioned field's path changes it.
    free = latent.field_directions(z, targets, ["Ring"], [], "test")["Ring"]
    other = lambda w: field(w)[:, 1]  # noqa: E731
    moved = lambda edited: (other(edited) - other(start)).abs().mean()  # noqa: E731
    assert moved(made) < 0.01 and moved(latent.make(start, free, present=True, margin=1.0)) > 0.3


def test_a_field_holds_its_conditions_only_within_the_band_asked():
    z, targets = ring_latents(1000)
    d = latent.field_directions(z, targets, ["Ring"], ["Other"], "test")["Ring"]
    free = latent.field_directions(z, targets, ["Ring"], [], "test")["Ring"]  # the same (seeded) fit, without the condition
    start = torch.from_numpy(z[:40])
    everywhere = latent.make(start, d, True, hold_within=float("inf"))
    assert torch.allclose(latent.make(start, d, True, hold_within=1e9), everywhere, atol=1e-5)
    assert torch.equal(latent.make(start, d, True), latent.make(start, d, True, margin=3.0, hold_within=1.0))  # the defaults
    assert torch.allclose(latent.make(start, d, True, hold_within=0.0), latent.make(start, free, True), atol=1e-5)
    assert not torch.allclose(everywhere, latent.make(start, free, True), atol=1e-3)
    # Within the band a condition is kept where it started, at the faces the edit moves.
    field = latent.AttributeField.from_weights(d.weights)
    before, after = field(start), field(latent.make(start, d, True, hold_within=3.0))
    held = (before[:, 1].abs() < 3.0) & (before[:, 0] < 1.0)
    assert held.sum() >= 3 and torch.allclose(after[held, 1], before[held, 1], atol=0.01)


def test_field_directions_are_saved_and_edit_the_same_way_after_loading(tmp_path):
    z, targets = ring_latents(1000)
    made = latent.field_directions(z, targets, ["Ring"], ["Other"], "test")
    latent.save_directions(tmp_path, made)
    loaded = latent.load_directions(tmp_path)["Ring"]
    assert "weights" not in json.loads((tmp_path / latent.DIRECTIONS_INDEX).read_text())["Ring"]
    start = torch.from_numpy(z[:8])
    assert torch.equal(latent.make(start, loaded, present=True), latent.make(start, made["Ring"], present=True))


def test_an_encoder_model_given_a_judge_fits_its_field_to_judged_prior_samples(vae_run, judge_dir, monkeypatch):
    """latent_edits.sh edits a VAE along a field fitted to what its decoder draws, not to the labels of encoded faces."""
    import facegen.judge

    monkeypatch.setattr(facegen.judge, "probabilities", brightness)
    made = latent.directions_from_labels(latent.open_model(vae_run), ["Smiling"], judge_dir, n=300, nonlinear=True, progress=False)
    assert made["Smiling"].method == "field" and made["Smiling"].n == 300
    assert "prior samples labelled by the judge" in made["Smiling"].source


def test_label_directions_from_the_cli_are_fields_holding_the_trusted_attributes_unless_linear(gan_run, judge_dir, capsys, tmp_path,
                                                                                                monkeypatch):
    import facegen.judge

    code, _, err = run(capsys, "directions", str(gan_run), "--linear", "--quiet")
    assert code == 2 and "--linear fits a plane to labels: add --from-labels" in err
    monkeypatch.setattr(facegen.judge, "probabilities", brightness)
    monkeypatch.setattr(latent, "trusted_attributes", lambda checkpoint: ["Male", "Smiling"])  # a 1-epoch judge trusts none
    code, out, _ = run(capsys, "directions", str(gan_run), "--from-labels", "Smiling", "--judge", str(judge_dir), "--n", "300", "--quiet")
    assert code == 0 and "field" in out and "held-out accuracy" in out
    smiling = latent.load_directions(gan_run)["Smiling"]
    assert smiling.method == "field" and "conditioned on Male" in smiling.source  # every trusted attribute but its own
    code, _, _ = run(capsys, "edit", str(gan_run), "--seeds", "0-3", "--make", "Smiling=yes", "--walk", "Smiling",
                     "--out", str(tmp_path / "field"))
    assert code == 0 and (tmp_path / "field" / "walk-Smiling.png").is_file()
    made = json.loads((tmp_path / "field" / "edit.json").read_text())["operations"][0]
    assert (made["margin"], made["hold_within"]) == (3.0, 1.0)  # a field's defaults, recorded
    code, out, _ = run(capsys, "directions", str(gan_run), "--from-labels", "Smiling", "--judge", str(judge_dir), "--n", "300",
                       "--linear", "--quiet")
    assert code == 0 and latent.load_directions(gan_run)["Smiling"].method == "labels"
    code, _, _ = run(capsys, "edit", str(gan_run), "--seeds", "0-3", "--make", "Smiling=yes", "--out", str(tmp_path / "plane"))
    made = json.loads((tmp_path / "plane" / "edit.json").read_text())["operations"][0]
    assert code == 0 and (made["margin"], made["hold_within"]) == (1.0, None)


def test_perfect_edits_benchmark_reads_each_edit_and_the_beards_own_labels(judge_dir, capsys, monkeypatch, tmp_path):
    import runpy
    import sys
    from pathlib import Path

    from facegen.judge import train_judge

    script = Path(__file__).parents[1] / "benchmarks" / "perfect_edits.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(judge_dir)])
    with pytest.raises(SystemExit):  # a judge of three CelebA-like attributes knows no hats or beards
        runpy.run_path(str(script), run_name="__main__")
    assert "knows no No_Beard, Wearing_Hat: train one on synthetic faces" in capsys.readouterr().err
    train_judge("synthetic:48", tmp_path, resolution=32, epochs=1, batch_size=16, base_channels=4, progress=False)
    monkeypatch.setattr(latent, "trusted_attributes", lambda checkpoint: list(checkpoint.state["accuracy"]))  # 1 epoch trusts none
    monkeypatch.setattr(sys, "argv", [str(script), str(tmp_path), "--n", "60"])
    runpy.run_path(str(script), run_name="__main__")
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["| add Eyeglasses", "| add Smiling", "| add Wearing_Hat", "| add a beard (men)",
                                        "| remove Eyeglasses", "| remove Smiling", "| remove Wearing_Hat", "| remove a beard"]
    beard = rows[3]
    assert beard[3] == "0.0 %" and float(beard[5].split()[0]) > 0  # nothing else drawn changes; a beard's own labels do
    assert rows[0][4] == "-"  # glasses are a feature of one label
