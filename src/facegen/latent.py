"""Latent tools from a checkpoint alone, for every family: interpolation, attribute directions, edits,
and the latent of a real photo (encoded by a VAE, projected into a GAN).

A direction is a unit vector in z-space with what it came from: the normalised mean of hand-picked
latents (the 32 px report's "basis vector"), the normal of a linear boundary fitted to labelled
latents (InterFaceGAN, Shen et al. 2020), or an eigenvector of the generator's first layer (SeFa,
Shen & Zhou 2021). Where a GAN's z separates an attribute poorly by any plane, a label direction can
instead carry a small MLP fitted to the labels (a "field"), and each face moves along its own gradient
of it. Directions live in the run as directions.safetensors + directions.json.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from facegen import checkpoint as ckpt
from facegen import data
from facegen.data.synthetic import same_feature
from facegen.devices import resolve_runtime
from facegen.files import write_bytes_atomic, write_text_atomic
from facegen.images import save_image, make_grid, to_float
from facegen.sample import generate, latents

DIRECTIONS_FILE, DIRECTIONS_INDEX = "directions.safetensors", "directions.json"
TENSORS = ("vector", "mean", "normal")  # a Direction's tensors, stored in DIRECTIONS_FILE as "{name}.{key}"
ENCODER_FILE = "encoder.safetensors"  # a GAN's encoder, trained by train_encoder
PROJECTION_SEEDS = 10**9  # projection starts draw prior seeds from here, apart from the seeds people sample


@dataclass
class LatentModel:
    """What the latent tools need of a run: its generator, and its encoder and discriminator when it has them."""

    G: nn.Module
    E: nn.Module | None
    D: nn.Module | None
    checkpoint: ckpt.Checkpoint
    run_dir: Path

    @property
    def resolution(self) -> int:
        return self.checkpoint.architecture["resolution"]

    @property
    def crop(self) -> int | None:
        return self.checkpoint.state["config"]["data"]["crop"]

    def z_of_seeds(self, seeds: Sequence[int]) -> torch.Tensor:
        return latents(seeds, self.G.z_dim, self.G.z_dist)

    def images(self, z: torch.Tensor) -> np.ndarray:
        return generate(self.G, z)


def open_model(run: str | Path) -> LatentModel:
    """A run's sampling generator (the EMA copy when kept), plus its encoder (its own, or one trained by
    `facegen train-encoder` for a GAN) and discriminator when present. A run with an encoder gives the pair
    that belongs together (checkpoint.autoencoder_roles), so photos decode through the decoder they were encoded for."""
    checkpoint = ckpt.load(run)
    run_dir = Path(run) if Path(run).is_dir() else checkpoint.path.parent.parent
    e_role, g_role = ckpt.autoencoder_roles(checkpoint) if "E" in checkpoint.nets else (None, "G_ema" if "G_ema" in checkpoint.nets else "G")
    if g_role not in checkpoint.nets:
        raise ValueError(f"{checkpoint.path} holds no generator ({', '.join(checkpoint.nets)}); pass a run of a generative model")
    roles = (g_role, *(r for r in (e_role, "D") if r in checkpoint.nets))
    nets = checkpoint.build(roles)
    E = nets.get(e_role)
    if E is None and (run_dir / ENCODER_FILE).is_file():
        E = ckpt.load(run_dir / ENCODER_FILE).build(("E",))["E"]
    return LatentModel(nets[g_role], E, nets.get("D"), checkpoint, run_dir)


# Interpolation ------------------------------------------------------------------------------------


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return torch.lerp(a, b, t)  # exact at both ends


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents); lerp when a and b are parallel."""
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolate(points: torch.Tensor, steps: int, spherical: bool = False) -> torch.Tensor:
    """(K, z_dim) -> ((K - 1) * (steps - 1) + 1, z_dim): `steps` latents per segment, shared ends counted once."""
    if len(points) < 2:
        raise ValueError("interpolation needs at least two points, e.g. --seeds 3,17")
    if steps < 2:
        raise ValueError(f"--steps {steps}: a segment needs at least its two ends (steps >= 2)")
    mix = slerp if spherical else lerp
    path = [points[0]]
    for a, b in zip(points, points[1:]):
        path += [mix(a, b, i / (steps - 1)) for i in range(1, steps)]
    return torch.stack(path)


def save_frames(frames: np.ndarray, out: str | Path, per_row: int, seconds_per_frame: float = 0.12) -> Path:
    """uint8 (N, R, R, 3) as a grid PNG (per_row a row) or an animated GIF that goes there and back."""
    out = Path(out)
    if out.suffix.lower() == ".gif":
        import io

        from PIL import Image

        buffer = io.BytesIO()
        images = [Image.fromarray(f) for f in frames]
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(seconds_per_frame * 1000), loop=0)
        return write_bytes_atomic(out, buffer.getvalue())
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: write a .png grid or a .gif animation")
    return save_image(make_grid(frames, nrow=per_row), out)


# Directions ---------------------------------------------------------------------------------------


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
    z = model.z_of_seeds(seeds)
    mean = z.mean(dim=0)
    vector = mean / mean.norm()
    spread = float((model.z_of_seeds(range(1000)) @ vector).std())  # how far the prior spreads along it
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
        mean, logvar = posterior(model.E, np.asarray(dataset.images[indices]))
        z = reparameterize(torch.from_numpy(mean), torch.from_numpy(logvar), torch.Generator().manual_seed(0)).numpy()
        targets = {a: (dataset.labels[indices, dataset.attr_names.index(a)] > 0).astype(np.float32) for a in wanted}
        source = f"{len(z)} encoded training faces (posterior draws) with their labels ({dataset.meta['source']})"
    else:
        if judge_path is None:
            raise ValueError("directions from labels of a model without labelled encoded data need an attribute judge to "
                             "label its samples: add --judge DIR (made by facegen judge train)")
        judge, _ = load_judge(judge_path)
        _known(wanted, judge.attr_names, f"the judge {judge_path}")
        z_t = model.z_of_seeds(range(n))
        p = probabilities(judge, model.images(z_t))
        z = z_t.numpy()
        targets = {a: p[:, judge.attr_names.index(a)] for a in wanted}
        source = f"{n} prior samples labelled by the judge {judge_path}"
    if nonlinear:
        return field_directions(z, targets, attributes, conditions, source)
    if judge_path is not None:
        source += f" (confident tails, |p - 0.5| >= {tail})"
    fitted = {}
    for a in wanted:
        keep = np.abs(targets[a] - 0.5) >= tail  # true labels (0 or 1) are all kept
        try:
            normal, offset, accuracy = fit_boundary(z[keep], targets[a][keep] >= 0.5)
        except ValueError as err:
            raise ValueError(f"{a}: {err}") from None
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
    for a in names:
        try:
            _need_both_kinds(targets[a] >= 0.5)
        except ValueError as err:
            raise ValueError(f"{a}: {err}") from None
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
    """SeFa: the top-k eigenvectors of A^T A, with A the weight that maps z to G's first feature map."""
    first = next(m for m in model.G.modules() if isinstance(m, (nn.ConvTranspose2d, nn.Linear)))
    weight = first.weight.detach().float()
    # ConvTranspose2d weight is (z_dim, C, k, k); Linear is (out, z_dim): either way, A is (out, z_dim).
    A = weight.reshape(weight.shape[0], -1).T if isinstance(first, nn.ConvTranspose2d) else weight
    if A.shape[1] != model.G.z_dim:
        raise ValueError("SeFa needs a generator whose first layer takes z directly")
    eigenvalues, eigenvectors = torch.linalg.eigh(A.T @ A)  # ascending
    return {f"sefa{i}": Direction(f"sefa{i}", eigenvectors[:, -1 - i].contiguous(), "sefa", 0,
                                  f"G's first layer, eigenvalue {eigenvalues[-1 - i].item():.3g}")
            for i in range(min(k, len(eigenvalues)))}


# Edits --------------------------------------------------------------------------------------------


def _step_along(direction: Direction) -> torch.Tensor:
    """The move along `vector` that changes the distance to the boundary by one spread. A conditioned
    vector is tilted away from the boundary's normal, so it takes a longer step to cross it by as much."""
    cosine = torch.dot(direction.vector, direction.boundary_normal())
    return direction.spread / cosine * direction.vector


def add(z: torch.Tensor, direction: Direction, strength: float, hold_within: float | None = None) -> torch.Tensor:
    """Move by `strength` units of the labels' (or the prior's) spread across the attribute's boundary (a field's
    logit: each face along its own path; `hold_within` as in `_climb`)."""
    if direction.weights is not None:
        field = AttributeField.from_weights(direction.weights)
        return _climb(z, field, field(z)[:, 0] + strength, hold_within=hold_within)
    return z + strength * _step_along(direction)


def make(z: torch.Tensor, direction: Direction, present: bool, margin: float = 1.0,
         hold_within: float | None = None) -> torch.Tensor:
    """Give every face the attribute (`present`) or its absence, across a label boundary <z, normal> + offset = 0
    (or a field's logit = 0): each latent short of `margin` spreads past it on the asked side moves along the
    (conditioned) vector, or its own conditioned path through the field (`_climb`), to exactly that, so the result is
    clearly there rather than a coin toss; latents already that far stay where they are. Unlike `add`, it moves only the
    faces that need it (removing a negatively named feature, No_Beard, is `present=True`). `hold_within`: as in `_climb`."""
    if not direction.has_boundary:
        raise ValueError(f"direction {direction.name!r} was made by {direction.method}; only label directions have "
                         "a boundary to cross (use --add or --remove for it)")
    sign = 1.0 if present else -1.0
    if direction.weights is not None:
        field = AttributeField.from_weights(direction.weights)
        return _climb(z, field, torch.full((len(z),), sign * margin), moving=sign * field(z)[:, 0] < margin,
                      hold_within=hold_within)
    distance = sign * (z @ direction.boundary_normal() + direction.offset) / direction.spread  # spreads on the asked side
    return z + sign * (margin - distance).clamp(min=0)[:, None] * _step_along(direction)


def _climb(z: torch.Tensor, field: AttributeField, goal: torch.Tensor, moving: torch.Tensor | None = None,
           iterations: int = 100, max_step: float = 0.5, tolerance: float = 0.01, hold_within: float | None = None,
           damping: float = 1.0) -> torch.Tensor:
    """Move each latent (of `moving`) until the field's output 0 is `goal` (N,) (a field's spread is one logit), in
    Gauss-Newton steps of at most max_step, so that the path follows the field's curves. Each step is the shortest move
    that, to first order, closes output 0's gap and brings every condition back to its logit at the start: InterFaceGAN's
    conditioning done face by face, with the drift a curved path causes corrected, not only left unpushed. The step is
    damped (Levenberg-Marquardt, `damping` in squared logits): where the held conditions nearly span the attribute's
    own gradient, the undamped shortest move is tens to hundreds of units long, and cut down to max_step it points
    nowhere useful, so faces stalled short of their goal (twenty-fourth session). With
    `hold_within`, a condition is held at a face only while its logit there is within that many logits of its boundary
    (and then pushed back towards its start): attributes far from flipping do not use up the directions the edit can take.
    Every path stays on the sphere |z| = |z at the start|: each step is tangent to it and the latent is put back on it
    after the step. A Gaussian prior's samples lie on a thin shell, where G was trained and the field fitted, and a
    path that leaves it reaches latents neither has seen (a DCGAN's edits flipped more faces with fewer side effects
    on it; benchmarks/README, "Latent edits", twenty-fourth session). Where the goal, the held conditions and the
    sphere conflict, a step is their compromise, so a face can end short of its goal."""
    moving = torch.ones(len(z), dtype=torch.bool) if moving is None else moving
    z = z.clone()
    start, radius = field(z)[:, 1:], z.norm(dim=1, keepdim=True).clamp(min=1e-12)
    ridge = damping * torch.eye(start.shape[1] + 2)  # one row per output, plus the sphere's
    for _ in range(iterations):
        logits, grads = field.gradients(z)
        gap = torch.where(moving, goal - logits[:, 0], torch.zeros(()))
        if gap.abs().max() <= tolerance:
            break
        held = torch.ones_like(start, dtype=torch.bool) if hold_within is None else logits[:, 1:].abs() < hold_within
        # A condition not held is a zero row (free); the last row, z's own direction, must not change: a tangent step.
        rows = torch.cat([grads[:, :1], grads[:, 1:] * held[:, :, None], (z / radius)[:, None]], dim=1)
        changes = torch.cat([gap[:, None], (start - logits[:, 1:]) * held, torch.zeros_like(radius)], dim=1) * moving[:, None]
        gram = rows @ rows.transpose(1, 2) + ridge
        step = (rows.transpose(1, 2) @ torch.linalg.solve(gram, changes[:, :, None]))[:, :, 0]
        z = z + step * (max_step / step.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0)
        z = torch.where(moving[:, None], z * radius / z.norm(dim=1, keepdim=True).clamp(min=1e-12), z)
    return z


def remove(z: torch.Tensor, direction: Direction, margin: float = 1.0, hold_within: float | None = None) -> torch.Tensor:
    """Take the feature out. Hand-picked and SeFa directions: the report's projection z - <z, e> e; a label
    boundary: `make` the feature absent."""
    if not direction.has_boundary:
        return z - (z @ direction.vector)[:, None] * direction.vector
    return make(z, direction, present=False, margin=margin, hold_within=hold_within)


def random_moves(z: torch.Tensor, z_edited: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """An edit's control: every latent moved exactly as far as the edit moved it, each along a random direction
    of its own (seeded), so that a score can tell the edit's side effects from those of any move that long."""
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
    return z + (z_edited - z).norm(dim=1, keepdim=True) * noise / noise.norm(dim=1, keepdim=True)


def walk(z: torch.Tensor, direction: Direction, strengths: Sequence[float]) -> torch.Tensor:
    """(N, z_dim) -> (N * len(strengths), z_dim): row i holds face i at every strength, in order."""
    return torch.stack([add(z, direction, s) for s in strengths], dim=1).reshape(-1, z.shape[1])


# Real photos --------------------------------------------------------------------------------------


def load_photos(model: LatentModel, paths: Sequence[str | Path]) -> np.ndarray:
    """uint8 (N, R, R, 3): photos prepared with the run's own crop and resolution, as its training data was."""
    return data.load_photos(paths, model.resolution, model.crop)


def d_features(D: nn.Module | None, x: torch.Tensor) -> torch.Tensor | None:
    """The run's own discriminator's last feature map before its head (B, C, base, base): a perceptual
    distance learned from the same faces, with nothing downloaded. None for D-less or multi-scale models
    (a D without a `features` method)."""
    return D.features(x) if hasattr(D, "features") else None


def project(model: LatentModel, images: np.ndarray, steps: int = 200, starts: int = 4, lr: float = 0.05,
            feature_weight: float = 0.1, init: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """Latents whose images match uint8 photos: Adam on z from several starts (or from `init`), minimising the
    pixel MSE plus feature_weight * (1 - cosine) of D's features and a weak pull to the prior; the best start wins."""
    G, D = model.G.eval(), model.D.eval() if model.D is not None else None
    for net in (G, D):
        if net is not None:
            net.requires_grad_(False)
    target = to_float(torch.from_numpy(np.ascontiguousarray(images)))
    n = len(target)
    if init is not None:
        z0 = init.detach().float()[None]
    else:  # start s of photo i: prior seed PROJECTION_SEEDS + (seed * starts + s) * N + i, away from sampling's seeds
        first = PROJECTION_SEEDS + seed * starts * n
        z0 = torch.stack([latents(range(first + s * n, first + (s + 1) * n), G.z_dim, G.z_dist) for s in range(starts)])
    z = z0.reshape(-1, G.z_dim).clone().requires_grad_(True)  # (starts * N, z_dim), start-major
    target = target.repeat(len(z0), 1, 1, 1)
    with torch.no_grad():
        target_features = d_features(D, target)
    opt = torch.optim.Adam([z], lr=lr)

    def losses_per_image() -> torch.Tensor:
        x = G(z)
        loss = (x - target).pow(2).flatten(1).mean(1)
        if target_features is not None and feature_weight:
            loss = loss + feature_weight * (1 - F.cosine_similarity(d_features(D, x).flatten(1), target_features.flatten(1)))
        return loss

    for _ in range(steps):
        loss = losses_per_image()
        opt.zero_grad(set_to_none=True)
        (loss.sum() + 1e-3 * z.pow(2).mean(1).sum()).backward()
        opt.step()
    with torch.no_grad():
        final = losses_per_image().reshape(len(z0), n)
    best = final.argmin(dim=0)
    return z.detach().reshape(len(z0), n, -1)[best, torch.arange(n)]


def photo_latents(model: LatentModel, images: np.ndarray, steps: int | None = None) -> tuple[torch.Tensor, str]:
    """The latents of photos, and how they were found: the encoder's mean (refined by `steps` of
    optimisation when asked), else projection into the GAN (from its trained encoder when it has one)."""
    from facegen.encoding import encode

    if model.E is not None:
        mu = torch.from_numpy(encode(model.E, images))
        if not steps:
            return mu, "encoder mean"
        return project(model, images, steps, init=mu), f"encoder mean + {steps} optimisation steps"
    return project(model, images, steps or 200), f"projection ({steps or 200} Adam steps, 4 random starts)"


def train_encoder(run: str | Path, steps: int = 2000, batch_size: int = 64, lr: float = 2e-4, pixel_weight: float = 1.0,
                  seed: int = 0, progress: bool = True) -> Path:
    """An encoder for a GAN, trained on its own samples (z -> G(z) -> E -> z, MSE in z) plus a pixel term on real
    faces (x -> E -> G -> x): the start that makes projection fast. Saved as RUN/encoder.safetensors."""
    from tqdm import tqdm

    from facegen.data import BatchLoader
    from facegen.models import vae

    model = open_model(run)
    if "E" in model.checkpoint.nets:
        raise ValueError(f"{model.checkpoint.path} is a {model.checkpoint.family} model with its own encoder; train-encoder is for GANs")
    architecture = {"resolution": model.resolution, "z_dim": model.G.z_dim,
                    "base_channels": model.checkpoint.architecture.get("base_channels", 64)}
    torch.manual_seed(seed)
    runtime = resolve_runtime()  # the training loop's device, precision and layout: bf16 halves the time on such CPUs
    E = runtime.prepare(vae.build_encoder(**architecture)["E"])
    G = runtime.prepare(model.G).eval().requires_grad_(False)
    dataset = model.checkpoint.dataset(progress=progress)
    loader = BatchLoader(dataset.images, dataset.split_indices("train"), batch_size, seed)
    opt, scaler = torch.optim.Adam(E.parameters(), lr=lr, betas=(0.5, 0.999)), runtime.grad_scaler()
    noise = torch.Generator().manual_seed(seed)
    for step in tqdm(range(steps), desc="train-encoder", disable=not progress):
        z = torch.randn(batch_size, G.z_dim, generator=noise)
        if G.z_dist == "uniform":
            z = torch.rand(batch_size, G.z_dim, generator=noise) * 2 - 1
        z, x_real = z.to(runtime.device), to_float(loader.batch(step)).to(runtime.device)
        with runtime.autocast():
            with torch.no_grad():
                x_fake = G(z)
            z_of_fake, x_again = E(x_fake)[0], G(E(x_real)[0])
        loss = F.mse_loss(z_of_fake.float(), z) + pixel_weight * F.mse_loss(x_again.float(), x_real)  # losses in fp32
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    state = {"step": steps, "generator": model.checkpoint.path.name, "config": model.checkpoint.state["config"],
             "train": {"steps": steps, "batch_size": batch_size, "lr": lr, "pixel_weight": pixel_weight, "seed": seed}}
    E = E.cpu().to(memory_format=torch.contiguous_format)  # saved as the loader builds it
    return ckpt.save(model.run_dir / ENCODER_FILE, ckpt.Checkpoint("encoder", architecture, {"E": E.state_dict()}, state))


# Scoring edits ------------------------------------------------------------------------------------


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
