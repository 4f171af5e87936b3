"""Latent tools from a checkpoint alone, for every family: interpolation, attribute directions, edits, the latent of
a real photo (encoded by a VAE, projected into a GAN) and scores of edits, one concern per module.

Every tool works in the model's edit space, which the generator itself names (`to_edit_space` /
`from_edit_space`): z for a DCGAN or VAE, w for a style model, so no tool tests a model's family.
"""

from facegen.latent.directions import (
    DIRECTIONS_FILE,
    DIRECTIONS_INDEX,
    AttributeField,
    Direction,
    condition,
    conditions_of,
    direction_from_seeds,
    directions_from_labels,
    field_directions,
    fit_boundary,
    fit_field,
    load_directions,
    pick,
    save_directions,
    sefa_directions,
    spread_along,
)
from facegen.latent.edits import add, edit_settings, make, random_moves, remove, walk
from facegen.latent.interpolation import (
    interpolate,
    lerp,
    save_frames,
    slerp,
    style_mix,
)
from facegen.latent.model import ENCODER_FILE, LatentModel, open_model
from facegen.latent.photos import (
    PROJECTION_SEEDS,
    d_features,
    load_photos,
    photo_labels,
    photo_latents,
    project,
    train_encoder,
)
from facegen.latent.scoring import score_edit, trusted_attributes

__all__ = [
    "DIRECTIONS_FILE", "DIRECTIONS_INDEX", "ENCODER_FILE", "PROJECTION_SEEDS", "AttributeField", "Direction", "LatentModel",
    "add", "condition", "conditions_of", "d_features", "direction_from_seeds", "directions_from_labels", "edit_settings",
    "field_directions",
    "fit_boundary", "fit_field", "interpolate", "lerp", "load_directions", "load_photos", "make", "open_model",
    "photo_labels", "photo_latents", "pick", "project", "random_moves", "remove", "save_directions", "save_frames", "score_edit",
    "sefa_directions", "slerp", "spread_along", "style_mix", "train_encoder", "trusted_attributes", "walk",
]
