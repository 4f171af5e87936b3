"""Edits along a direction: add it, make an attribute present or absent across its boundary, remove it, walk it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch

from facegen.latent.directions import AttributeField, Direction

# How far past the boundary --make and --remove go, and how near its boundary a field holds a condition, unless asked
# otherwise. On synthetic faces with known attributes (benchmarks/README.md, "Latent edits") the VAE's field met all
# 8 edits at margin 3 held within 0.5 logits and the DCGAN's at margin 4 held within 2: one default for both lies between.
FIELD_MARGIN = 3.0  # logits past a field's boundary: 95 % sure on the asked side
FIELD_HOLD_WITHIN = 1.0  # logits from a condition's boundary within which a field holds it (inf: everywhere)
PLANE_MARGIN = 1.0  # spreads past a plane's boundary


def edit_settings(direction: Direction, margin: float | None = None, hold_within: float | None = None) -> tuple[float, float | None]:
    """The margin and the band an edit along `direction` uses: those asked, else its method's defaults. A plane holds
    its conditions by its own tilt, so it has no band (None)."""
    if direction.weights is not None:
        return (FIELD_MARGIN if margin is None else margin), (FIELD_HOLD_WITHIN if hold_within is None else hold_within)
    return (PLANE_MARGIN if margin is None else margin), None


def _step_along(direction: Direction) -> torch.Tensor:
    """The move along `vector` that changes the distance to the boundary by one spread. A conditioned
    vector is tilted away from the boundary's normal, so it takes a longer step to cross it by as much."""
    cosine = torch.dot(direction.vector, direction.boundary_normal())
    return direction.spread / cosine * direction.vector


def per_face(edit: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Edits are defined on one latent a face (N, dim). A photo projected into W+ (N, layers, dim) moves as the mean
    of its layers' latents would, every layer by the same vector, so an edit keeps what the projection found."""
    @functools.wraps(edit)
    def on_layers(z: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if z.dim() == 2:
            return edit(z, *args, **kwargs)
        centre = z.mean(dim=1)
        return z + (edit(centre, *args, **kwargs) - centre)[:, None]
    return on_layers


@per_face
def add(z: torch.Tensor, direction: Direction, strength: float, hold_within: float | None = None,
        sphere: bool = True) -> torch.Tensor:
    """Move by `strength` units of the labels' (or the prior's) spread across the attribute's boundary (a field's
    logit: each face along its own path; `hold_within` (default: edit_settings) and `sphere` as in `_climb`)."""
    if direction.weights is not None:
        field = AttributeField.from_weights(direction.weights)
        _, hold_within = edit_settings(direction, hold_within=hold_within)
        return _climb(z, field, field(z)[:, 0] + strength, hold_within=hold_within, sphere=sphere)
    return z + strength * _step_along(direction)


@per_face
def make(z: torch.Tensor, direction: Direction, present: bool, margin: float | None = None,
         hold_within: float | None = None, sphere: bool = True) -> torch.Tensor:
    """Give every face the attribute (`present`) or its absence, across a label boundary <z, normal> + offset = 0
    (or a field's logit = 0): each latent short of `margin` spreads past it on the asked side moves along the
    (conditioned) vector, or its own conditioned path through the field (`_climb`), to exactly that, so the result is
    clearly there rather than a coin toss; latents already that far stay where they are. Unlike `add`, it moves only the
    faces that need it (removing a negatively named feature, No_Beard, is `present=True`). `hold_within`, `sphere`: as in
    `_climb`; `margin` and `hold_within` default to edit_settings'."""
    if not direction.has_boundary:
        raise ValueError(f"direction {direction.name!r} was made by {direction.method}; only label directions have "
                         "a boundary to cross (use --add or --remove for it)")
    margin, hold_within = edit_settings(direction, margin, hold_within)
    sign = 1.0 if present else -1.0
    if direction.weights is not None:
        field = AttributeField.from_weights(direction.weights)
        return _climb(z, field, torch.full((len(z),), sign * margin), moving=sign * field(z)[:, 0] < margin,
                      hold_within=hold_within, sphere=sphere)
    distance = sign * (z @ direction.boundary_normal() + direction.offset) / direction.spread  # spreads on the asked side
    return z + sign * (margin - distance).clamp(min=0)[:, None] * _step_along(direction)


def _climb(z: torch.Tensor, field: AttributeField, goal: torch.Tensor, moving: torch.Tensor | None = None,
           iterations: int = 100, max_step: float = 0.5, tolerance: float = 0.01, hold_within: float | None = None,
           damping: float = 1.0, sphere: bool = True) -> torch.Tensor:
    """Move each latent (of `moving`) until the field's output 0 is `goal` (N,) (a field's spread is one logit), in
    Gauss-Newton steps of at most max_step, so that the path follows the field's curves. Each step is the shortest move
    that, to first order, closes output 0's gap and brings every condition back to its logit at the start: InterFaceGAN's
    conditioning done face by face, with the drift a curved path causes corrected, not only left unpushed. The step is
    damped (Levenberg-Marquardt, `damping` in squared logits): where the held conditions nearly span the attribute's
    own gradient, the undamped shortest move is tens to hundreds of units long, and cut down to max_step it points
    nowhere useful, so faces stalled short of their goal (twenty-fourth session). With
    `hold_within`, a condition is held at a face only while its logit there is within that many logits of its boundary
    (and then pushed back towards its start): attributes far from flipping do not use up the directions the edit can take.
    With `sphere`, every path stays on the sphere |z| = |z at the start|: each step is tangent to it and the latent is
    put back on it after the step. A Gaussian prior's samples lie on a thin shell, where G was trained and the field
    fitted, and a path that leaves it reaches latents neither has seen (a DCGAN's edits flipped more faces with fewer
    side effects on it; benchmarks/README, "Latent edits", twenty-fourth session); a style model's w has no such shell
    (LatentModel.spherical says which). Where the goal, the held conditions and the sphere conflict, a step is their
    compromise, so a face can end short of its goal."""
    moving = torch.ones(len(z), dtype=torch.bool) if moving is None else moving
    z = z.clone()
    start, radius = field(z)[:, 1:], z.norm(dim=1, keepdim=True).clamp(min=1e-12)
    ridge = damping * torch.eye(start.shape[1] + 1 + sphere)  # one row per output, plus the sphere's
    for _ in range(iterations):
        logits, grads = field.gradients(z)
        gap = torch.where(moving, goal - logits[:, 0], torch.zeros(()))
        if gap.abs().max() <= tolerance:
            break
        held = torch.ones_like(start, dtype=torch.bool) if hold_within is None else logits[:, 1:].abs() < hold_within
        # A condition not held is a zero row (free); on the sphere a last row, z's own direction, must not change: a
        # tangent step.
        rows = [grads[:, :1], grads[:, 1:] * held[:, :, None], *([(z / radius)[:, None]] if sphere else [])]
        changes = [gap[:, None], (start - logits[:, 1:]) * held, *([torch.zeros_like(radius)] if sphere else [])]
        rows, changes = torch.cat(rows, dim=1), torch.cat(changes, dim=1) * moving[:, None]
        gram = rows @ rows.transpose(1, 2) + ridge
        step = (rows.transpose(1, 2) @ torch.linalg.solve(gram, changes[:, :, None]))[:, :, 0]
        z = z + step * (max_step / step.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0)
        if sphere:
            z = torch.where(moving[:, None], z * radius / z.norm(dim=1, keepdim=True).clamp(min=1e-12), z)
    return z


@per_face
def remove(z: torch.Tensor, direction: Direction, margin: float | None = None, hold_within: float | None = None,
           sphere: bool = True) -> torch.Tensor:
    """Take the feature out. Hand-picked and SeFa directions: the report's projection z - <z, e> e; a label
    boundary: `make` the feature absent."""
    if not direction.has_boundary:
        return z - (z @ direction.vector)[:, None] * direction.vector
    return make(z, direction, present=False, margin=margin, hold_within=hold_within, sphere=sphere)


def random_moves(z: torch.Tensor, z_edited: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """An edit's control: every latent moved exactly as far as the edit moved it, each along a random direction
    of its own (seeded), so that a score can tell the edit's side effects from those of any move that long. W+
    latents move as their edit did, every layer alike."""
    move = (z_edited - z) if z.dim() == 2 else (z_edited - z).mean(dim=1)  # (N, dim)
    noise = torch.randn(move.shape, generator=torch.Generator().manual_seed(seed))
    move = move.norm(dim=1, keepdim=True) * noise / noise.norm(dim=1, keepdim=True)
    return z + (move if z.dim() == 2 else move[:, None])


def walk(z: torch.Tensor, direction: Direction, strengths: Sequence[float], sphere: bool = True) -> torch.Tensor:
    """(N, ...) -> (N * len(strengths), ...): row i holds face i at every strength, in order."""
    return torch.stack([add(z, direction, s, sphere=sphere) for s in strengths], dim=1).flatten(0, 1)
