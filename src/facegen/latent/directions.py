"""Attribute directions in the edit space, and where they come from.

A direction is a unit vector with what it came from: the normalised mean of hand-picked latents (the 32 px
report's "basis vector"), the normal of a linear boundary fitted to labelled latents (InterFaceGAN, Shen et al.
2020), or an eigenvector of the generator's first layer (SeFa, Shen & Zhou 2021). Where a GAN's z separates an
attribute poorly by any plane, a label direction can instead carry a small MLP fitted to the labels (a "field"),
and each face moves along its own gradient of it. Directions live in the run as directions.safetensors +
directions.json.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from facegen.data.synthetic import same_feature
from facegen.files import write_bytes_atomic, write_text_atomic
from facegen.latent.model import LatentModel

DIRECTIONS_FILE, DIRECTIONS_INDEX = "directions.safetensors", "directions.json"
TENSORS = ("vector", "mean", "normal")  # a Direction's tensors, stored in DIRECTIONS_FILE as "{name}.{key}"


@dataclass
class Direction:
    name: str
    vector: torch.Tensor  # (z_dim,), unit length
    method: str  # seeds | labels | sefa
    n: int  # latents it was fitted on
    source: str  # what labelled them: "seeds 3,17,...", "judge runs/judge", "encoded CelebA labels", "G's first layer"
    spread: float = 1.0  # std of the fitted latents along the boundary normal (spread_along): the unit of edit strengths
    offset: float = 0.0  # labels: the boundary is <z, normal> + offset = 0
    accuracy: float | None = None  # labels: held-out accuracy of the boundary
    mean: torch.Tensor | None = None  # seeds: the (unnormalised) mean latent, "the sunglassiest boy"
    normal: torch.Tensor | None = None  # labels, conditioned: the boundary's own normal (else it is `vector`)
    weights: dict[str, torch.Tensor] | None = None  # field: an AttributeField's weights; output 0 is this attribute, the rest its conditions
    date: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in (*TENSORS, "weights")}

    @property
    def has_boundary(self) -> bool:
        """Label directions were fitted as a boundary (<z, normal> + offset = 0, or a field's logit = 0); the others
        are bare vectors."""
        return self.method in ("labels", "field")

    def boundary_normal(self) -> torch.Tensor:
        return self.vector if self.normal is None else self.normal


def save_directions(run_dir: Path, directions: dict[str, Direction]) -> None:
    """Write the run's directions (replacing the files atomically, index and tensors together)."""
    tensors = {f"{name}.{key}": getattr(d, key).float().contiguous()
               for name, d in directions.items() for key in TENSORS if getattr(d, key) is not None}
    tensors |= {f"{name}.weights.{key}": w.float().contiguous()
                for name, d in directions.items() if d.weights is not None for key, w in d.weights.items()}
    write_bytes_atomic(run_dir / DIRECTIONS_FILE, safetensors.torch.save(tensors))
    write_text_atomic(run_dir / DIRECTIONS_INDEX, json.dumps({n: d.describe() for n, d in directions.items()}, indent=1))


def load_directions(run_dir: Path, required: bool = True) -> dict[str, Direction]:
    index, tensors = run_dir / DIRECTIONS_INDEX, run_dir / DIRECTIONS_FILE
    if not (index.is_file() and tensors.is_file()):
        if required:
            raise ValueError(f"{run_dir} has no directions ({DIRECTIONS_INDEX} and {DIRECTIONS_FILE}); "
                             f"make some first, e.g. facegen directions {run_dir} --from-labels Smiling --judge runs/judge")
        return {}
    described = json.loads(index.read_text())
    with safetensors.safe_open(tensors, framework="pt") as f:
        keys = set(f.keys())

        def weights(name: str) -> dict[str, torch.Tensor] | None:
            prefix = f"{name}.weights."
            found = {key[len(prefix):]: f.get_tensor(key) for key in keys if key.startswith(prefix)}
            return found or None

        return {name: Direction(**meta, weights=weights(name), **{key: f.get_tensor(f"{name}.{key}") if f"{name}.{key}" in keys else None
                                                              for key in TENSORS})
                for name, meta in described.items()}


def pick(directions: dict[str, Direction], name: str) -> Direction:
    if name not in directions:
        known = ", ".join(directions) or "none yet"
        raise ValueError(f"unknown direction {name!r}; this run has: {known}")
    return directions[name]


def direction_from_seeds(model: LatentModel, name: str, seeds: Sequence[int]) -> Direction:
    """The 32 px report's basis vector: the normalised mean of hand-picked latents."""
    if len(seeds) < 1:
        raise ValueError(f"--from-seeds {name}=...: list at least one seed")
    z = model.latents_of_seeds(seeds)
    mean = z.mean(dim=0)
    vector = mean / mean.norm()
    spread = float((model.latents_of_seeds(range(1000)) @ vector).std())  # how far the prior spreads along it
    return Direction(name, vector, "seeds", len(seeds), "seeds " + ",".join(map(str, seeds)), spread=spread, mean=mean)


def fit_boundary(z: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """A linear boundary between latents with and without an attribute (logistic regression on the
    confident tails the caller passes): (unit normal, offset, held-out accuracy on 20 %)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ValueError("directions from labels need scikit-learn: pip install 'facegen[latent]'") from None
    labels = labels.astype(bool)
    _need_both_kinds(labels)
    order = np.random.default_rng(seed).permutation(len(z))
    cut = int(0.8 * len(z))
    fit, test = order[:cut], order[cut:]
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(z[fit], labels[fit])
    accuracy = float(clf.score(z[test], labels[test])) if len(test) else float("nan")
    norm = np.linalg.norm(clf.coef_[0])
    return clf.coef_[0] / norm, float(clf.intercept_[0] / norm), accuracy


def _need_both_kinds(labels: np.ndarray) -> None:
    if labels.all() or not labels.any():
        raise ValueError(f"all {len(labels)} labelled latents are {'positive' if labels.all() else 'negative'}; "
                         "a boundary needs both kinds: label more samples (--n) or pick another attribute")


def spread_along(z: np.ndarray, vector: np.ndarray) -> float:
    """The std of latents along a unit vector: the unit of edit strengths."""
    return float((z @ vector).std())


def directions_from_labels(model: LatentModel, attributes: Sequence[str], judge_path: str | Path | None = None,
                           n: int = 4000, conditions: Sequence[str] = (), tail: float = 0.3, nonlinear: bool = False,
                           progress: bool = True) -> dict[str, Direction]:
    """InterFaceGAN: fit a linear boundary per attribute to labelled latents and keep its unit normal.

    Encoder models with labelled data encode up to n training faces and use their true labels, fitting the
    boundary to one draw from each face's posterior (mean + sigma * noise): the latents the decoder is trained
    on. Fitted to the means alone it leans on the dimensions a VAE leaves at the prior, whose means vary by
    ~0.1 and still separate the labels, but which the decoder ignores (on synthetic faces it drew hats on
    1.9 % of the faces a sampled boundary's direction drew them on 70 %; benchmarks/README). Other runs (and
    any run given a judge) label the faces of n prior samples with the attribute judge, keeping its
    confident tails (probability <= 0.5 - tail or >= 0.5 + tail). Each direction is then made orthogonal
    to those of `conditions` (but for its own feature's labels: `conditions_of`), so editing it leaves them
    alone. With `nonlinear`, an AttributeField is fitted to all the labels (the judge's probabilities as they
    are) instead: see field_directions.
    """
    from facegen.encoding import posterior
    from facegen.judge import load_judge, probabilities
    from facegen.models.vae import reparameterize

    wanted = list(dict.fromkeys([*attributes, *conditions]))
    if not attributes:
        raise ValueError("--from-labels needs at least one attribute name, e.g. --from-labels Smiling Eyeglasses")
    dataset = model.checkpoint.dataset(progress=progress) if model.E is not None and judge_path is None else None
    if dataset is not None and dataset.labels is not None:
        _known(wanted, dataset.attr_names, "the run's data")
        indices = dataset.spread_indices("train", n)
        y = dataset.labels[indices][:, [dataset.attr_names.index(c) for c in model.condition_names]] if model.condition_names else None
        mean, logvar = posterior(model.E, np.asarray(dataset.images[indices]), labels=y)
        z = reparameterize(torch.from_numpy(mean), torch.from_numpy(logvar), torch.Generator().manual_seed(0)).numpy()
        targets = {a: (dataset.labels[indices, dataset.attr_names.index(a)] > 0).astype(np.float32) for a in wanted}
        source = f"{len(z)} encoded training faces (posterior draws) with their labels ({dataset.meta['source']})"
    else:
        if judge_path is None:
            raise ValueError("directions from labels of a model without labelled encoded data need an attribute judge to "
                             "label its samples: add --judge DIR (made by facegen judge train)")
        judge, _ = load_judge(judge_path)
        _known(wanted, judge.attr_names, f"the judge {judge_path}")
        z_t = model.latents_of_seeds(range(n))
        p = probabilities(judge, model.images(z_t, model.labels_of_seeds(range(n))))
        z = z_t.numpy()
        targets = {a: p[:, judge.attr_names.index(a)] for a in wanted}
        source = f"{n} prior samples labelled by the judge {judge_path}"
    kept = {a: np.abs(targets[a] - 0.5) >= (0.0 if nonlinear else tail) for a in wanted}  # true labels (0 or 1) all stay
    attributes, conditions = _without_one_sided(attributes, conditions, {a: targets[a][kept[a]] >= 0.5 for a in wanted})
    wanted = list(dict.fromkeys([*attributes, *conditions]))
    if nonlinear:
        return field_directions(z, {a: targets[a] for a in wanted}, attributes, conditions, source)
    if judge_path is not None:
        source += f" (confident tails, |p - 0.5| >= {tail})"
    fitted = {}
    for a in wanted:
        keep = kept[a]
        normal, offset, accuracy = fit_boundary(z[keep], targets[a][keep] >= 0.5)
        spread = spread_along(z[keep], normal)
        fitted[a] = Direction(a, torch.from_numpy(normal).float(), "labels", int(keep.sum()), source, spread, offset, accuracy)
    out = {}
    for a in attributes:
        held = conditions_of(a, conditions)
        if not held:
            out[a] = fitted[a]
            continue
        vector = condition(fitted[a].vector, [fitted[c].vector for c in held])
        out[a] = Direction(a, vector, "labels", fitted[a].n, f"{source}; conditioned on {', '.join(held)}",
                           fitted[a].spread, fitted[a].offset, fitted[a].accuracy, normal=fitted[a].vector)
    return out


def _without_one_sided(attributes: Sequence[str], conditions: Sequence[str],
                       labels: dict[str, np.ndarray]) -> tuple[list[str], list[str]]:
    """The attributes and conditions whose labelled latents have both kinds; each one without is named in a line of its
    own with the reason and the fix, and only when none of the asked attributes is left is that an error."""
    skipped = {}
    for name, values in labels.items():
        try:
            _need_both_kinds(values)
        except ValueError as err:
            skipped[name] = str(err)
    if skipped and all(a in skipped for a in attributes):
        raise ValueError("; ".join(f"{a}: {skipped[a]}" for a in attributes))
    for name, reason in skipped.items():
        print(f"facegen: skipped {name} ({'condition' if name not in attributes else 'direction'}): {reason}", file=sys.stderr)
    return [a for a in attributes if a not in skipped], [c for c in conditions if c not in skipped]


class AttributeField(nn.Module):
    """z -> one logit per attribute: a small MLP for latents that no plane separates well (a GAN's z, where a linear
    boundary agrees with the judge on 77-95 % of held-out samples; benchmarks/README). SiLU, so that its gradient,
    which edits follow, is smooth."""

    def __init__(self, z_dim: int, outputs: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, outputs))

    @classmethod
    def from_weights(cls, weights: dict[str, torch.Tensor]) -> AttributeField:
        hidden, z_dim = weights["net.0.weight"].shape
        field = cls(z_dim, len(weights["net.4.weight"]), hidden)
        field.load_state_dict(weights)
        return field.requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def gradients(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (N, K), their gradients (N, K, z_dim)) at each latent."""
        with torch.enable_grad():
            z = z.detach().requires_grad_()
            logits = self(z)
            grads = [torch.autograd.grad(logits[:, k].sum(), z, retain_graph=k < logits.shape[1] - 1)[0] for k in range(logits.shape[1])]
        return logits.detach(), torch.stack(grads, dim=1)


def fit_field(z: np.ndarray, targets: np.ndarray, epochs: int = 40, seed: int = 0) -> tuple[AttributeField, np.ndarray]:
    """An AttributeField fitted by binary cross-entropy to (N, K) targets in [0, 1] (a judge's probabilities or true
    labels), and its agreement with them (both sides of 0.5) on a held-out 10 %, per attribute."""
    generator = torch.Generator().manual_seed(seed)
    z_t, y = torch.from_numpy(z).float(), torch.from_numpy(np.asarray(targets, np.float32))
    order = torch.randperm(len(z_t), generator=generator)
    cut = int(0.9 * len(z_t))
    fit, test = order[:cut], order[cut:]
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, without moving the caller's random state
        torch.manual_seed(seed)
        field = AttributeField(z_t.shape[1], y.shape[1])
    adam = torch.optim.Adam(field.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for batch in fit[torch.randperm(cut, generator=generator)].split(256):
            loss = F.binary_cross_entropy_with_logits(field(z_t[batch]), y[batch])
            adam.zero_grad(set_to_none=True)
            loss.backward()
            adam.step()
    field.requires_grad_(False)
    agreement = ((field(z_t[test]) > 0) == (y[test] >= 0.5)).float().mean(0).numpy() if len(test) else np.full(y.shape[1], np.nan)
    return field, agreement


def field_directions(z: np.ndarray, targets: dict[str, np.ndarray], attributes: Sequence[str], conditions: Sequence[str],
                     source: str) -> dict[str, Direction]:
    """Label directions that carry an AttributeField fitted to every attribute in `targets` at once. Each keeps the
    field's outputs for its attribute and its conditions. Its unit (spread) is one logit, so that strengths and margins
    read as log-odds of the labels (--margin 2: odds of 7 to 1), whatever the field's scale; its vector is the mean of
    its conditioned gradient over the labelled latents (what it does on average, for reading)."""
    names = list(targets)
    field, agreement = fit_field(z, np.stack([targets[a] for a in names], axis=1))
    weights = field.state_dict()
    out = {}
    for a in attributes:
        kept = [a, *conditions_of(a, conditions)]
        rows = torch.tensor([names.index(k) for k in kept])
        own = AttributeField.from_weights({**weights, "net.4.weight": weights["net.4.weight"][rows], "net.4.bias": weights["net.4.bias"][rows]})
        mean_move = _conditioned(own.gradients(torch.from_numpy(z).float())[1]).mean(0)
        conditioned = f"; conditioned on {', '.join(kept[1:])}" if len(kept) > 1 else ""
        out[a] = Direction(a, mean_move / mean_move.norm(), "field", len(z), f"{source}; an MLP field{conditioned}",
                           1.0, 0.0, float(agreement[names.index(a)]), weights=own.state_dict())
    return out


def conditions_of(attribute: str, conditions: Sequence[str]) -> list[str]:
    """The conditions an attribute's direction is held to: all but the labels of its own feature (`same_feature`),
    which a perfect edit may change (holding Goatee absent would leave a beard fewer ways to be drawn)."""
    own = same_feature(attribute)
    return [c for c in dict.fromkeys(conditions) if c not in own]


def _conditioned(grads: torch.Tensor) -> torch.Tensor:
    """Per latent, the gradient of output 0 without its components along the others' gradients (N, K, z_dim) -> (N, z_dim):
    InterFaceGAN's conditioning, done face by face."""
    g = grads[:, 0]
    if grads.shape[1] > 1:
        others = grads[:, 1:].transpose(1, 2)  # (N, z_dim, K - 1)
        g = g - (others @ (torch.linalg.pinv(others) @ g[:, :, None]))[:, :, 0]
    return g


def _known(names: Sequence[str], known: Sequence[str], where: str) -> None:
    for name in names:
        if name not in known:
            raise ValueError(f"unknown attribute {name!r}; {where} knows: {', '.join(known)}")


def condition(vector: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """InterFaceGAN's conditional manipulation: remove from `vector` its components along the other
    directions (Gram-Schmidt), so that moving along it leaves them unchanged, and renormalise."""
    basis: list[torch.Tensor] = []
    for other in others:
        for b in basis:
            other = other - torch.dot(other, b) * b
        if other.norm() > 1e-6:
            basis.append(other / other.norm())
    for b in basis:
        vector = vector - torch.dot(vector, b) * b
    if vector.norm() < 1e-6:
        raise ValueError("the direction lies within the span of the conditions; condition on fewer attributes")
    return vector / vector.norm()


def sefa_directions(model: LatentModel, k: int = 5) -> dict[str, Direction]:
    """SeFa: the top-k eigenvectors of A^T A, with A the weights that first read the edit-space latent: G's first
    layer for z, every layer's style map stacked for a style model's w (Shen & Zhou 2021)."""
    if hasattr(model.G, "style_weights"):
        A = model.G.style_weights().detach().float()
    else:
        first = next(m for m in model.G.modules() if isinstance(m, (nn.ConvTranspose2d, nn.Linear)))
        weight = first.weight.detach().float()
        # ConvTranspose2d weight is (z_dim, C, k, k); Linear is (out, z_dim): either way, A is (out, z_dim).
        A = weight.reshape(weight.shape[0], -1).T if isinstance(first, nn.ConvTranspose2d) else weight
        if A.shape[1] != model.G.z_dim:
            raise ValueError("SeFa needs a generator whose first layer takes z directly")
    eigenvalues, eigenvectors = torch.linalg.eigh(A.T @ A)  # ascending
    return {f"sefa{i}": Direction(f"sefa{i}", eigenvectors[:, -1 - i].contiguous(), "sefa", 0,
                                  f"G's {'style maps' if hasattr(model.G, 'style_weights') else 'first layer'}, "
                                  f"eigenvalue {eigenvalues[-1 - i].item():.3g}")
            for i in range(min(k, len(eigenvalues)))}
