"""What an attribute judge reads from *perfect* edits: synthetic faces drawn twice from the same generator, the second
time with one feature changed (`draw_face(change=...)`) and nothing else. Its flip rate and side effects there are
the best any model's edit can score by that judge (issue 9, target 1; benchmarks/README, "Latent edits").

    python benchmarks/perfect_edits.py runs/latent/judge-synth32-40k [--n 3000] [--seed 777]

Faces are drawn at 64 px and LANCZOS-resized to the judge's resolution, as the data cache prepares them. A changed
feature takes the values the data draws it with (a beard is a stubble-free goatee, full beard or mustache at the
data's odds, with the data's 60 % mustache on the first two); faces that already have the target value are skipped.
"""

import argparse

import numpy as np

from facegen.data.cache import fit_image
from facegen.data.synthetic import draw_face, same_feature
from facegen.judge import load_judge, predict
from facegen.latent import trusted_attributes


def beard(rng: np.random.Generator) -> dict:
    kind = str(rng.choice(["mustache", "goatee", "full"], p=(0.12 / 0.4, 0.13 / 0.4, 0.15 / 0.4)))  # the data's odds for men
    return {"beard": "", "mustache": True} if kind == "mustache" else {"beard": kind, "mustache": bool(rng.random() < 0.6)}


# (edit, attribute, target value, change drawn for a face lacking it)
EDITS = (
    ("add Eyeglasses", "Eyeglasses", True, lambda rng: {"glasses": str(rng.choice(["clear", "sun"], p=(2 / 3, 1 / 3)))}),
    ("add Smiling", "Smiling", True, lambda rng: {"smiling": True}),
    ("add Wearing_Hat", "Wearing_Hat", True, lambda rng: {"hat": str(rng.choice(["beanie", "brim"])), "bangs": False}),
    ("add a beard (men)", "No_Beard", False, beard),
    ("remove Eyeglasses", "Eyeglasses", False, lambda rng: {"glasses": ""}),
    ("remove Smiling", "Smiling", False, lambda rng: {"smiling": False}),
    ("remove Wearing_Hat", "Wearing_Hat", False, lambda rng: {"hat": ""}),
    ("remove a beard", "No_Beard", True, lambda rng: {"beard": "", "mustache": False}),
)


def drawn(seed: int, i: int, resolution: int, change: dict | None = None) -> tuple[np.ndarray, dict[str, bool]]:
    image, labels = draw_face(np.random.default_rng([seed, i]), 64, change)
    return fit_image(image, resolution, crop=None), labels  # as the data cache prepares a synthetic face


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("judge", help="a judge trained on synthetic faces (facegen judge train synthetic:N)")
    parser.add_argument("--n", type=int, default=3000, help="faces drawn (default 3000)")
    parser.add_argument("--seed", type=int, default=777, help="the faces' seed, apart from part A's data (seeds 0 and 2; default 777)")
    args = parser.parse_args()
    judge, checkpoint = load_judge(args.judge)
    trusted, names = trusted_attributes(checkpoint), judge.attr_names
    missing = sorted({attribute for _, attribute, _, _ in EDITS} - set(names))
    if missing:
        parser.error(f"the judge {args.judge} knows no {', '.join(missing)}: train one on synthetic faces "
                     "(facegen judge train synthetic:40000@2 --resolution 32 --epochs 20 --out DIR)")
    faces = [drawn(args.seed, i, judge.resolution) for i in range(args.n)]
    print("| perfect edit | judge flip | others (trusted), judge | others truly changed | own feature's other labels, judge | truly |")
    print("| --- | --- | --- | --- | --- | --- |")
    for title, attribute, target, change in EDITS:
        rng = np.random.default_rng(args.seed)
        wanted = [i for i, (_, labels) in enumerate(faces)
                  if labels[attribute] != target and (labels["Male"] or "men" not in title)]
        edited = [drawn(args.seed, i, judge.resolution, change(rng)) for i in wanted]
        was = predict(judge, np.stack([faces[i][0] for i in wanted]))
        now = predict(judge, np.stack([image for image, _ in edited]))
        own = same_feature(attribute)
        columns = {kind: [name for name in trusted if name != attribute and (name in own) == (kind == "own")] for kind in ("others", "own")}
        cells = {}
        for kind, cols in columns.items():
            judged = (was != now)[:, [names.index(n) for n in cols]].mean() if cols else np.nan
            truly = np.mean([[faces[i][1][n] != labels[n] for n in cols] for i, (_, labels) in zip(wanted, edited)]) if cols else np.nan
            cells[kind] = f"{100 * judged:.1f} % | {100 * truly:.1f} %" if cols else "- | -"
        t = names.index(attribute)
        needed = was[:, t] != target  # as --score counts: the faces the judge saw without the target value
        flipped = (now[needed, t] == target).mean()
        print(f"| {title} | {100 * flipped:.1f} % of {needed.sum()} | {cells['others']} | {cells['own']} |", flush=True)


if __name__ == "__main__":
    main()
