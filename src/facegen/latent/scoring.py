"""How well an edit works, read by the attribute judge: flips, side effects, and a control of random moves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from facegen import checkpoint as ckpt
from facegen.data.synthetic import same_feature


def trusted_attributes(judge_checkpoint: ckpt.Checkpoint, margin: float = 0.02) -> list[str]:
    """Attributes the judge predicts clearly better than always answering the majority."""
    accuracy, baseline = judge_checkpoint.state["accuracy"], judge_checkpoint.state["baseline"]
    return [name for name in accuracy if accuracy[name] >= baseline[name] + margin]


def score_edit(judge: nn.Module, trusted: Sequence[str], before: np.ndarray, after: np.ndarray, attribute: str,
               target: bool, moved: np.ndarray, extractor=None, before_features: np.ndarray | None = None,
               control: np.ndarray | None = None) -> dict:
    """How well an edit works: the fraction of faces without the target value that reach it (None when every
    face already had it); among the faces the edit `moved` (a removal leaves faces without the feature alone,
    and counting them would dilute its side effects), the mean fraction whose other trusted attributes the judge
    sees change, the same for the `control` images (the faces moved as far along random directions: what any
    move that long changes), and, with an Inception extractor, the mean cosine of features before and after
    (1: otherwise the same face). Labels of the target's own feature (`same_feature`: a beard's Mustache) change with a
    perfect edit too, so they are reported apart (`own_feature_changed`), not as side effects."""
    from facegen.judge import edit_success, predict

    was, now = predict(judge, before), predict(judge, after)  # (N, A)
    needed = was[:, judge.attr_names.index(attribute)] != target
    flipped = edit_success(judge, before, after, attribute, target) if needed.any() else None
    changed = (was != now)[moved]
    own = same_feature(attribute)
    watched = [judge.attr_names.index(name) for name in trusted if name != attribute]
    others = [i for i in watched if judge.attr_names[i] not in own]
    siblings = [i for i in watched if judge.attr_names[i] in own]
    nothing = float("nan")  # no face moved, or no attribute to watch

    def share_changed(changes: np.ndarray, columns: list[int]) -> float:  # (moved faces, A) -> share of `columns` changed
        return float(changes[:, columns].mean()) if columns and moved.any() else nothing

    scores = {"attribute": attribute, "target": target, "flip_rate": flipped, "n": len(before), "n_needed": int(needed.sum()),
              "n_moved": int(moved.sum()), "others_changed": share_changed(changed, others),
              "own_feature": [judge.attr_names[i] for i in siblings], "own_feature_changed": share_changed(changed, siblings),
              "others_changed_each": {judge.attr_names[i]: float(changed[:, i].mean()) if moved.any() else nothing for i in watched}}
    if control is not None:
        scores["others_changed_control"] = share_changed((was != predict(judge, control))[moved], others)
    if extractor is not None:  # before_features: the same faces' features, when several edits of them are scored
        a = before_features if before_features is not None else extractor.features(before, progress=False)
        b = extractor.features(after, progress=False)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        scores["inception_cosine"] = float(cosine[moved].mean()) if moved.any() else nothing
    return scores
