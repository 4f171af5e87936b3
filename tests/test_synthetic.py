"""Synthetic faces: reproducible, written in the official CelebA layout, and labelled truthfully."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.data.synthetic import CELEBA_ATTRIBUTES, LABEL_GROUPS, draw_face, same_feature, write_synthetic_celeba

SIZE = 32


def _face(seed: int, i: int) -> tuple[np.ndarray, dict[str, bool]]:
    image, labels = draw_face(np.random.default_rng([seed, i]), SIZE)
    return np.asarray(image), labels


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """400 faces as float (N, H, W, 3) pixels and one boolean array per attribute: enough for stable means."""
    drawn = [_face(1, i) for i in range(400)]
    x = np.stack([pixels for pixels, _ in drawn]).astype(np.float64)
    labels = {name: np.array([lab[name] for _, lab in drawn]) for name in CELEBA_ATTRIBUTES}
    return x, labels


def _read_attributes(root: Path) -> tuple[int, list[str], dict[str, list[int]]]:
    lines = (root / "list_attr_celeba.txt").read_bytes().decode().split("\n")
    assert lines[-1] == "" and "\r" not in lines[0]
    rows = {row.split()[0]: [int(v) for v in row.split()[1:]] for row in lines[2:-1]}
    return int(lines[0]), lines[1].split(" "), rows


def test_same_seed_and_index_give_the_same_face():
    pixels, labels = _face(0, 3)
    again, again_labels = _face(0, 3)
    assert np.array_equal(pixels, again) and labels == again_labels
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8
    assert not np.array_equal(pixels, _face(1, 3)[0])
    assert not np.array_equal(pixels, _face(0, 4)[0])


# Another value for every drawn choice that a label reads.
_OTHER_CHOICES = {
    "male": [True, False], "pale": [True, False], "shape": ["oval", "round", "plain"],
    "hair": ["bald", "short", "medium", "long"], "hair_name": ["Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair"],
    "wavy": [True, False], "bangs": [True, False], "sideburns": [True, False], "narrow_eyes": [True, False],
    "bushy": [True, False], "arched": [True, False], "big_nose": [True, False], "smiling": [True, False],
    "mouth_open": [True, False], "lipstick": [True, False], "rosy": [True, False],
    "beard": ["", "stubble", "goatee", "full"], "mustache": [True, False], "glasses": ["", "clear", "sun"],
    "hat": ["", "beanie", "brim"],
}  # fmt: skip


def test_a_changed_choice_changes_labels_of_one_group_only():
    """LABEL_GROUPS is the truth: whatever one drawn choice becomes, the labels that change lie in one group."""
    for i in range(20):
        _, labels = draw_face(np.random.default_rng([3, i]), SIZE)
        for choice, values in _OTHER_CHOICES.items():
            for value in values:
                _, changed = draw_face(np.random.default_rng([3, i]), SIZE, change={choice: value})
                names = {name for name in CELEBA_ATTRIBUTES if labels[name] != changed[name]}
                assert not names or names <= same_feature(next(iter(names))), (choice, value, names)
    assert same_feature("Mustache") == same_feature("No_Beard") and "Male" not in same_feature("No_Beard")
    assert same_feature("Smiling") == {"Smiling"} and all(len(group) > 1 for group in LABEL_GROUPS)


def test_a_changed_face_keeps_the_rest_of_the_picture():
    pixels, labels = _face(0, 5)
    same, _ = draw_face(np.random.default_rng([0, 5]), SIZE, change={})
    hat = "brim" if labels["Wearing_Hat"] is False else ""
    edited, edited_labels = draw_face(np.random.default_rng([0, 5]), SIZE, change={"hat": hat})
    assert np.array_equal(pixels, np.asarray(same))
    assert edited_labels["Wearing_Hat"] != labels["Wearing_Hat"]
    changed_rows = np.abs(np.asarray(edited).astype(int) - pixels).sum(axis=(1, 2)) > 0
    assert changed_rows.any() and not changed_rows[-SIZE // 4:].any()  # the hat, not the shoulders
    with pytest.raises(ValueError, match="unknown drawn choices .'beards'.*beard"):
        draw_face(np.random.default_rng(0), SIZE, change={"beards": "full"})


def test_worker_count_does_not_change_the_files(tmp_path):
    one = write_synthetic_celeba(tmp_path / "one", n=5, seed=7, size=SIZE, workers=1, progress=False)
    two = write_synthetic_celeba(tmp_path / "two", n=5, seed=7, size=SIZE, workers=2, progress=False)
    names = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(names) == 6
    assert names == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert all((one / name).read_bytes() == (two / name).read_bytes() for name in names)
    other = write_synthetic_celeba(tmp_path / "other", n=5, seed=8, size=SIZE, workers=1, progress=False)
    assert (one / "img_align_celeba/000001.jpg").read_bytes() != (other / "img_align_celeba/000001.jpg").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "other", "two"]  # no temporary left behind


def test_attribute_file_is_official_and_matches_the_drawn_faces(tmp_path):
    root = write_synthetic_celeba(tmp_path / "celeba", n=4, seed=2, size=SIZE, workers=1, progress=False)
    count, header, rows = _read_attributes(root)
    assert count == 4
    assert header == [*CELEBA_ATTRIBUTES, ""]  # names, then the official trailing space
    assert list(rows) == ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"]
    for i, (name, values) in enumerate(rows.items()):
        pixels, labels = _face(2, i)
        assert values == [1 if labels[a] else -1 for a in CELEBA_ATTRIBUTES]
        saved = np.asarray(Image.open(root / "img_align_celeba" / name).convert("RGB")).astype(int)
        assert np.abs(saved - pixels).mean() < 4  # the same face, up to JPEG loss


def test_main_attribute_rates_are_balanced(faces):
    _, labels = faces
    bands = {"Smiling": (0.35, 0.65), "Male": (0.35, 0.65), "Eyeglasses": (0.18, 0.42), "Wearing_Hat": (0.1, 0.32)}
    for name, (low, high) in bands.items():
        assert low < labels[name].mean() < high, name
    never_drawn = ["Attractive", "Blurry", "Heavy_Makeup", "Young", "Wearing_Necktie"]
    assert not any(labels[name].any() for name in never_drawn)


def test_beards_only_on_men_and_lipstick_only_on_women(faces):
    _, labels = faces
    bearded = labels["Goatee"] | labels["Mustache"] | ~labels["No_Beard"]
    assert bearded.any()
    assert labels["Male"][bearded].all()
    assert not labels["No_Beard"][labels["Goatee"] | labels["Mustache"]].any()
    assert not labels["Wearing_Lipstick"][labels["Male"]].any()


def _brightening(faces, attribute: str, top: float, bottom: float, left: float, right: float) -> float:
    """How much brighter a box (fractions of the frame) is on average with the attribute than without."""
    x, labels = faces
    box = x[:, int(top * SIZE) : int(bottom * SIZE), int(left * SIZE) : int(right * SIZE)].mean(axis=(1, 2, 3))
    return box[labels[attribute]].mean() - box[~labels[attribute]].mean()


def test_glasses_darken_the_eyes(faces):
    eyes = -_brightening(faces, "Eyeglasses", 0.43, 0.58, 0.25, 0.75)
    mouth = -_brightening(faces, "Eyeglasses", 0.69, 0.78, 0.25, 0.75)  # a control region
    assert eyes > 15 and eyes > 2 * abs(mouth)


def test_smiles_show_teeth(faces):
    mouth = _brightening(faces, "Smiling", 0.69, 0.78, 0.4, 0.6)
    forehead = _brightening(faces, "Smiling", 0.3, 0.39, 0.4, 0.6)  # a control region
    assert mouth > 10 and mouth > 2 * abs(forehead)


def test_existing_root_and_bad_arguments_are_refused(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        write_synthetic_celeba(tmp_path / "taken", n=1, progress=False)
    with pytest.raises(ValueError, match="n must be"):
        write_synthetic_celeba(tmp_path / "empty", n=0, progress=False)
    with pytest.raises(ValueError, match="size must be"):
        write_synthetic_celeba(tmp_path / "tiny", n=1, size=8, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
