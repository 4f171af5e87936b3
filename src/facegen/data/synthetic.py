"""Procedurally drawn faces in the CelebA layout: the offline data set and a labelled ground truth.

Every face is drawn from its own seeded generator, so its pixels and its 40 CelebA labels are a
pure function of (seed, index), and the labels say exactly what was drawn.
"""

import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)  # fmt: skip

# Labels read from the same drawn choices (`_labels`): changing one choice, a beard drawn, can change any label of its
# group and none outside it (tests/test_synthetic.py checks every choice). A perfect edit of one of them may change the
# others (a drawn beard carries a mustache 60 % of the time, and a mustache alone makes No_Beard false), so an edit's
# side effects are counted outside its group. CelebA's labels of the same names describe the same features.
LABEL_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"5_o_Clock_Shadow", "Goatee", "Mustache", "No_Beard"}),  # beard, mustache
    frozenset({"Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Straight_Hair", "Wavy_Hair"}),  # hair, its colour, waves
    frozenset({"Chubby", "Oval_Face"}),  # shape
)


def same_feature(attribute: str) -> frozenset[str]:
    """The labels that describe the same drawn feature as `attribute`, itself included."""
    return next((group for group in LABEL_GROUPS if attribute in group), frozenset({attribute}))


_SUPERSAMPLE = 4  # drawn at 4x and LANCZOS-downsampled, so edges are antialiased
_JPEG_QUALITY = 95
_MAX_CHUNK = 256  # faces per worker task: large enough to hide task overhead

# Skin tones from pale to dark; the first is the one labelled Pale_Skin.
_SKIN_TONES = ((252, 228, 214), (238, 198, 168), (224, 176, 140), (196, 144, 104), (158, 106, 72), (108, 70, 46))
_SKIN_WEIGHTS = (0.15, 0.2, 0.2, 0.17, 0.15, 0.13)
_HAIR_COLOURS = {
    "Black_Hair": (28, 22, 20), "Brown_Hair": (100, 62, 34),
    "Blond_Hair": (228, 192, 110), "Gray_Hair": (172, 170, 168),
}  # fmt: skip
_HAIR_WEIGHTS = (0.3, 0.35, 0.2, 0.15)
_IRIS_COLOURS = ((72, 44, 24), (46, 94, 150), (64, 112, 62), (34, 26, 20))
_LIPSTICKS = ((196, 28, 48), (176, 22, 84), (220, 62, 92))
_FRAME_COLOURS = ((18, 18, 18), (60, 34, 20), (24, 30, 70), (90, 20, 30))
_DARK = (34, 26, 26)


@dataclass(frozen=True)
class _Face:
    """Everything drawn about one face; the labels are read from its choices."""

    male: bool
    pale: bool
    shape: str  # "oval", "round" (labelled Chubby) or "plain"
    hair: str  # "bald", "short", "medium" or "long"
    hair_name: str  # the *_Hair column matching hair_colour
    wavy: bool
    bangs: bool
    sideburns: bool
    narrow_eyes: bool
    bushy: bool
    arched: bool
    big_nose: bool
    smiling: bool
    mouth_open: bool
    lipstick: bool
    rosy: bool
    beard: str  # "", "stubble", "goatee" or "full"
    mustache: bool
    glasses: str  # "", "clear" or "sun"
    hat: str  # "", "beanie" or "brim"
    head_rx: float
    head_ry: float
    part: float  # sideways shift of the hairline, a side parting
    gaze: float
    skin: tuple[int, int, int]
    hair_colour: tuple[int, int, int]
    iris: tuple[int, int, int]
    lips: tuple[int, int, int]
    clothes: tuple[int, int, int]
    frame: tuple[int, int, int]
    hat_colour: tuple[int, int, int]


def _rgb(values) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.round(values), 0, 255))


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return _rgb((1 - t) * np.asarray(a) + t * np.asarray(b))


def _muted(rng: np.random.Generator) -> tuple[int, int, int]:
    """A random colour pulled towards grey, like the walls and clothes of real photos."""
    return _mix(rng.integers(0, 256, 3), (128, 128, 128), 0.35)


def _sample_face(rng: np.random.Generator) -> _Face:
    """Draw every choice of one face; sex shifts the odds of hair length, beards and make-up."""
    male = bool(rng.random() < 0.5)
    hair_odds = (0.1, 0.72, 0.14, 0.04) if male else (0.0, 0.08, 0.32, 0.6)
    hair = str(rng.choice(["bald", "short", "medium", "long"], p=hair_odds))
    hair_index = int(rng.choice(4, p=_HAIR_WEIGHTS))
    hat = str(rng.choice(["", "beanie", "brim"], p=(0.8, 0.1, 0.1)))
    glasses = str(rng.choice(["", "clear", "sun"], p=(0.7, 0.2, 0.1)))
    beard_odds = (0.45, 0.15, 0.12, 0.13, 0.15) if male else (1.0, 0.0, 0.0, 0.0, 0.0)
    beard = str(rng.choice(["", "stubble", "mustache", "goatee", "full"], p=beard_odds))
    smiling = bool(rng.random() < 0.5)
    skin_index = int(rng.choice(len(_SKIN_TONES), p=_SKIN_WEIGHTS))
    skin = _rgb(np.asarray(_SKIN_TONES[skin_index]) + rng.normal(0, 5, 3))
    lipstick = not male and bool(rng.random() < 0.55)
    lips = _LIPSTICKS[rng.integers(len(_LIPSTICKS))] if lipstick else _mix(skin, (176, 84, 84), 0.45)
    shape = str(rng.choice(["oval", "round", "plain"], p=(0.35, 0.25, 0.4)))
    rx, ry = {"oval": (0.235, 0.345), "round": (0.285, 0.31), "plain": (0.255, 0.325)}[shape]
    return _Face(
        male=male,
        pale=skin_index == 0,
        shape=shape,
        hair=hair,
        hair_name=list(_HAIR_COLOURS)[hair_index],
        wavy=bool(rng.random() < (0.5 if hair == "long" else 0.25)),
        bangs=hair != "bald" and not hat and bool(rng.random() < 0.3),
        sideburns=male and hair == "short" and bool(rng.random() < 0.25),
        narrow_eyes=glasses != "sun" and bool(rng.random() < 0.15),  # sunglasses would hide them
        bushy=bool(rng.random() < (0.3 if male else 0.1)),
        arched=bool(rng.random() < (0.1 if male else 0.4)),
        big_nose=bool(rng.random() < 0.2),
        smiling=smiling,
        mouth_open=bool(rng.random() < (0.7 if smiling else 0.15)),  # as in CelebA, most smiles show teeth
        lipstick=lipstick,
        rosy=bool(rng.random() < (0.1 if male else 0.35)),
        beard="" if beard == "mustache" else beard,
        mustache=beard == "mustache" or (beard in ("goatee", "full") and bool(rng.random() < 0.6)),
        glasses=glasses,
        hat=hat,
        head_rx=rx + rng.uniform(-0.01, 0.01),
        head_ry=ry + rng.uniform(-0.01, 0.01),
        part=rng.uniform(-0.04, 0.04),
        gaze=rng.uniform(-0.008, 0.008),
        skin=skin,
        hair_colour=_rgb(np.asarray(list(_HAIR_COLOURS.values())[hair_index]) + rng.normal(0, 8, 3)),
        iris=_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))],
        lips=lips,
        clothes=_muted(rng),
        frame=_FRAME_COLOURS[rng.integers(len(_FRAME_COLOURS))],
        hat_colour=_rgb(rng.integers(20, 236, 3)),
    )


def _labels(face: _Face) -> dict[str, bool]:
    """The 40 CelebA labels of a face: true exactly for what was drawn, false for the rest."""
    has_hair = face.hair != "bald"
    labels = dict.fromkeys(CELEBA_ATTRIBUTES, False)
    labels.update({
        "5_o_Clock_Shadow": face.beard == "stubble",
        "Arched_Eyebrows": face.arched,
        "Bald": not has_hair,
        "Bangs": face.bangs,
        "Big_Nose": face.big_nose,
        "Bushy_Eyebrows": face.bushy,
        "Chubby": face.shape == "round",
        "Eyeglasses": face.glasses != "",
        "Goatee": face.beard == "goatee",
        "Male": face.male,
        "Mouth_Slightly_Open": face.mouth_open,
        "Mustache": face.mustache,
        "Narrow_Eyes": face.narrow_eyes,
        "No_Beard": face.beard in ("", "stubble") and not face.mustache,
        "Oval_Face": face.shape == "oval",
        "Pale_Skin": face.pale,
        "Rosy_Cheeks": face.rosy,
        "Sideburns": face.sideburns,
        "Smiling": face.smiling,
        "Straight_Hair": has_hair and not face.wavy,
        "Wavy_Hair": has_hair and face.wavy,
        "Wearing_Hat": face.hat != "",
        "Wearing_Lipstick": face.lipstick,
        face.hair_name: has_hair,
    })  # fmt: skip
    return labels


def _ellipse(cx: float, cy: float, rx: float, ry: float, t0: float = 0.0, t1: float = 2 * math.pi,
             n: int = 40, power: float = 2.0, wave: float = 0.0) -> np.ndarray:
    """(n, 2) points on an ellipse from angle t0 to t1 (y points down); a rounded box if power > 2,
    a rippled outline (curly hair) if wave > 0."""
    t = np.linspace(t0, t1, n)
    cos, sin = np.cos(t), np.sin(t)
    r = 1.0 + wave * np.sin(13.0 * t)
    x = cx + rx * r * np.sign(cos) * np.abs(cos) ** (2 / power)
    y = cy + ry * r * np.sign(sin) * np.abs(sin) ** (2 / power)
    return np.stack([x, y], axis=1)


def _ellipse_cut(cx: float, cy: float, rx: float, ry: float, y_cut: float, keep: str = "above",
                 wave: float = 0.0) -> np.ndarray:
    """The part of an ellipse above the line y = y_cut, from the left over the top to the right,
    or with keep="below" the part under it, from the right under the bottom to the left."""
    a = math.asin(np.clip((y_cut - cy) / ry, -1.0, 1.0))
    t0, t1 = (math.pi - a, 2 * math.pi + a) if keep == "above" else (a, math.pi - a)
    return _ellipse(cx, cy, rx, ry, t0, t1, wave=wave)


class _Pen:
    """Draws shapes given in unit-square coordinates through one pose: scale, rotation, shift."""

    def __init__(self, draw: ImageDraw.ImageDraw, px: int, scale: float, angle: float, shift: np.ndarray):
        cos, sin = math.cos(angle), math.sin(angle)
        self.draw = draw
        self.unit = px * scale  # pixels per unit length
        self.matrix = self.unit * np.array([[cos, -sin], [sin, cos]])
        self.offset = px * (0.5 + shift)

    def _pixels(self, points) -> list[float]:
        return ((np.asarray(points, dtype=float) - 0.5) @ self.matrix.T + self.offset).ravel().tolist()

    def fill(self, points, colour: tuple[int, int, int]) -> None:
        self.draw.polygon(self._pixels(points), fill=colour)

    def line(self, points, colour: tuple[int, int, int], width: float) -> None:
        self.draw.line(self._pixels(points), fill=colour, width=max(1, round(width * self.unit)), joint="curve")


# Where the features sit in the unit square before the pose, as in an aligned CelebA crop.
_CX, _CY = 0.5, 0.53  # head centre
_EYE_Y, _EYE_DX = 0.5, 0.105
_MOUTH_Y = 0.72


def _draw_back(pen: _Pen, f: _Face) -> None:
    """Hair behind the head, neck, shoulders, ears and the bare head with cheeks and beard."""
    rx, ry = f.head_rx, f.head_ry
    if f.hair in ("medium", "long"):
        hx, bottom = rx + 0.05, (0.78 if f.hair == "medium" else 1.0)
        top = _ellipse_cut(_CX, _CY - 0.02, hx, ry + 0.05, _CY, wave=0.02 * f.wavy)
        sides = np.linspace(_CY, bottom, 8)
        ripple = 0.015 * f.wavy * np.sin(sides * 60)
        right = np.stack([_CX + hx + 0.02 + ripple, sides], axis=1)
        left = np.stack([_CX - hx - 0.02 - ripple, sides], axis=1)[::-1]
        pen.fill(np.concatenate([top, right, left]), f.hair_colour)
    pen.fill([(_CX - 0.09, 0.7), (_CX + 0.09, 0.7), (_CX + 0.1, 1.0), (_CX - 0.1, 1.0)], _mix(f.skin, _DARK, 0.2))
    pen.fill(_ellipse(_CX, 1.13, 0.46, 0.25), f.clothes)
    for side in (-1, 1):
        pen.fill(_ellipse(_CX + side * rx, 0.53, 0.035, 0.06), _mix(f.skin, _DARK, 0.1))
    pen.fill(_ellipse(_CX, _CY, rx, ry), f.skin)
    if f.rosy:
        for side in (-1, 1):
            pen.fill(_ellipse(_CX + side * 0.14, 0.62, 0.045, 0.035), _mix(f.skin, (232, 96, 110), 0.4))
    if f.beard in ("stubble", "full"):
        jaw = _ellipse_cut(_CX, _CY + 0.015, rx + 0.01, ry + 0.02, 0.58, keep="below")
        around_mouth = [(_CX + 0.09, 0.66), (_CX, 0.69), (_CX - 0.09, 0.66)]
        colour = f.hair_colour if f.beard == "full" else _mix(f.skin, (40, 40, 52), 0.3)
        pen.fill(np.concatenate([jaw, around_mouth]), colour)
    if f.beard == "goatee":
        pen.fill(_ellipse(_CX, _CY + f.head_ry - 0.05, 0.065, 0.07), f.hair_colour)


def _draw_hair(pen: _Pen, f: _Face) -> None:
    """Hair over the head: a cap down to the temples, with bangs or sideburns."""
    rx, ry = f.head_rx, f.head_ry
    cut = 0.47 if f.hair == "short" else 0.56
    outer = _ellipse_cut(_CX, _CY - 0.015, rx + 0.03, ry + 0.035, cut, wave=0.02 * f.wavy)
    inner = _ellipse_cut(_CX + f.part, _CY + 0.02, rx * 0.93, ry * 0.78, cut)[::-1]
    pen.fill(np.concatenate([outer, inner]), f.hair_colour)
    if f.bangs:
        fringe_y = 0.405
        x = np.linspace(_CX + rx, _CX - rx, 11)
        teeth = np.stack([x, fringe_y + 0.015 * (np.arange(11) % 2)], axis=1)
        pen.fill(np.concatenate([_ellipse_cut(_CX, _CY, rx + 0.01, ry + 0.01, fringe_y), teeth]), f.hair_colour)
    if f.sideburns:
        for side in (-1, 1):
            x0, x1 = _CX + side * rx * 0.98, _CX + side * rx * 0.86
            pen.fill([(x0, 0.44), (x1, 0.44), (x1, 0.6), (x0, 0.6)], f.hair_colour)


def _draw_features(pen: _Pen, f: _Face) -> None:
    """Eyebrows, eyes, nose, mouth and mustache."""
    brow = _mix(f.hair_colour, _DARK, 0.45)
    eye_ry = 0.014 if f.narrow_eyes else 0.03
    for side in (-1, 1):
        ex = _CX + side * _EYE_DX
        arch = 0.02 if f.arched else 0.008
        pen.line([(ex - side * 0.045, 0.445), (ex + side * 0.01, 0.435 - arch), (ex + side * 0.065, 0.45)],
                 brow, 0.03 if f.bushy else 0.018)
        pen.fill(_ellipse(ex, _EYE_Y, 0.055, eye_ry), (246, 244, 238))
        pen.fill(_ellipse(ex + f.gaze, _EYE_Y, 0.024, min(0.024, eye_ry)), f.iris)
        pen.fill(_ellipse(ex + f.gaze, _EYE_Y, 0.011, min(0.011, eye_ry * 0.6)), (8, 8, 8))
        pen.line(_ellipse(ex, _EYE_Y, 0.057, eye_ry, math.pi, 2 * math.pi, n=16), _DARK, 0.012 if f.male else 0.017)

    shadow = _mix(f.skin, _DARK, 0.45)
    nose_rx = 0.05 if f.big_nose else 0.035
    pen.line([(_CX + 0.004, 0.53), (_CX + 0.012, 0.6)], shadow, 0.012)
    pen.line(_ellipse(_CX, 0.61, nose_rx, 0.02, 0.2, math.pi - 0.2, n=16), shadow, 0.016)

    mouth_dark = (86, 28, 34)
    if f.smiling and f.mouth_open:
        pen.fill(_ellipse(_CX, _MOUTH_Y - 0.015, 0.09, 0.06, 0, math.pi), mouth_dark)
        pen.fill(_ellipse(_CX, _MOUTH_Y - 0.015, 0.082, 0.028, 0, math.pi), (244, 242, 236))
        pen.line(_ellipse(_CX, _MOUTH_Y - 0.015, 0.09, 0.06, 0, math.pi, n=20), f.lips, 0.014)
    elif f.smiling:
        pen.line(_ellipse(_CX, _MOUTH_Y - 0.025, 0.09, 0.04, 0, math.pi, n=20), f.lips, 0.024)
    elif f.mouth_open:
        pen.fill(_ellipse(_CX, _MOUTH_Y, 0.052, 0.03), mouth_dark)
        pen.line(_ellipse(_CX, _MOUTH_Y, 0.052, 0.03, n=24), f.lips, 0.014)
    else:
        pen.fill(_ellipse(_CX, _MOUTH_Y, 0.07, 0.02), f.lips)
        pen.line([(_CX - 0.07, _MOUTH_Y), (_CX + 0.07, _MOUTH_Y)], _mix(f.lips, _DARK, 0.5), 0.008)
    if f.mustache:
        pen.fill(_ellipse(_CX, _MOUTH_Y - 0.04, 0.08, 0.022), f.hair_colour)


def _draw_accessories(pen: _Pen, f: _Face) -> None:
    """Glasses and hat, drawn last because they cover the face and hair."""
    if f.glasses:
        for side in (-1, 1):
            ex = _CX + side * _EYE_DX
            lens = _ellipse(ex, _EYE_Y + 0.005, 0.075, 0.055, power=3.0)
            if f.glasses == "sun":
                pen.fill(lens, (22, 22, 28))
            pen.line(np.concatenate([lens, lens[:1]]), f.frame, 0.014)
            pen.line([(ex + side * 0.075, _EYE_Y), (_CX + side * f.head_rx, _EYE_Y - 0.01)], f.frame, 0.012)
        pen.line([(_CX - 0.03, _EYE_Y - 0.005), (_CX + 0.03, _EYE_Y - 0.005)], f.frame, 0.012)
    if f.hat:
        rx, ry = f.head_rx + 0.035, f.head_ry + 0.05
        band_y = 0.33
        pen.fill(_ellipse_cut(_CX, _CY - 0.03, rx, ry, band_y), f.hat_colour)
        if f.hat == "beanie":
            pen.fill(_ellipse(_CX, band_y, rx + 0.005, 0.035, power=6.0), _mix(f.hat_colour, _DARK, 0.25))
        else:
            pen.fill(_ellipse(_CX, band_y, rx + 0.1, 0.035), _mix(f.hat_colour, _DARK, 0.2))


def _check_size(size: int) -> None:
    if size < 16:
        raise ValueError(f"size must be at least 16 px to draw a recognisable face, got {size}")


def draw_face(rng: np.random.Generator, size: int = 64, change: Mapping[str, object] | None = None) -> tuple[Image.Image, dict[str, bool]]:
    """One RGB face of size x size and the attributes it truly shows, drawn from `rng` alone. `change` replaces drawn
    choices (fields of `_Face`, e.g. {"glasses": "sun"}) and leaves everything else as the same rng draws it: a
    perfect edit of that face, the reference an edit of a generated face is measured against."""
    _check_size(size)
    face = _sample_face(rng)
    if change:
        unknown = sorted(set(change) - {f.name for f in fields(_Face)})
        if unknown:
            raise ValueError(f"unknown drawn choices {unknown}; a face has: {', '.join(f.name for f in fields(_Face))}")
        face = replace(face, **change)
    px = size * _SUPERSAMPLE
    image = Image.new("RGB", (px, px), _muted(rng))
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.4:  # a two-tone background: a wall corner or a horizon
        split = int(px * rng.uniform(0.25, 0.75))
        box = (split, 0, px, px) if rng.random() < 0.5 else (0, split, px, px)
        draw.rectangle(box, fill=_muted(rng))
    # Pose jitter: a few pixels of shift, a few percent of scale, up to 6 degrees of roll.
    pen = _Pen(draw, px, scale=rng.uniform(1.04, 1.16), angle=rng.uniform(-0.1, 0.1), shift=rng.uniform(-0.04, 0.04, 2))
    _draw_back(pen, face)
    if face.hair != "bald":
        _draw_hair(pen, face)
    _draw_features(pen, face)
    _draw_accessories(pen, face)
    return image.resize((size, size), Image.LANCZOS), _labels(face)


def _write_faces(job: tuple[Path, int, int, range]) -> list[str]:
    """Save faces `indices` as JPEGs in `folder` and return their attribute rows (runs in a worker)."""
    folder, seed, size, indices = job
    rows = []
    for i in indices:
        image, labels = draw_face(np.random.default_rng([seed, i]), size)
        name = f"{i + 1:06d}.jpg"
        image.save(folder / name, quality=_JPEG_QUALITY, subsampling=0)  # 4:4:4 keeps small red lips red
        rows.append(" ".join([name] + ["1" if labels[a] else "-1" for a in CELEBA_ATTRIBUTES]))
    return rows


def write_synthetic_celeba(root: Path, n: int, seed: int = 0, size: int = 64, workers: int | None = None,
                           progress: bool = True) -> Path:
    """Write n faces in the official CelebA layout under root and return root.

    Face i (file i + 1) is draw_face(np.random.default_rng([seed, i]), size), whatever the number
    of workers. The set is built in a temporary sibling and renamed, so root is never half written.
    """
    root = Path(root)
    if n < 1:
        raise ValueError(f"n must be at least 1 face, got {n}")
    _check_size(size)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1 (or None for all cores), got {workers}")
    if root.exists():
        raise ValueError(f"{root} already exists; delete it or pass another root to write a new synthetic set")
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        folder = partial / "img_align_celeba"
        folder.mkdir()
        workers = min(workers or os.cpu_count() or 1, n)
        chunk = min(_MAX_CHUNK, math.ceil(n / (4 * workers)))  # several tasks per worker to balance load
        jobs = [(folder, seed, size, range(start, min(start + chunk, n))) for start in range(0, n, chunk)]
        rows = []
        with Pool(workers) as pool, tqdm(total=n, desc="synthetic faces", unit="face", disable=not progress) as bar:
            for job_rows in pool.imap(_write_faces, jobs):
                rows.extend(job_rows)
                bar.update(len(job_rows))
        header = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]  # the official file ends the names with a space
        (partial / "list_attr_celeba.txt").write_text("\n".join(header + rows) + "\n", newline="\n")
        partial.rename(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return root
