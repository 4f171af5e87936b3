import pytest
import torch
import torch.nn.functional as F

from facegen.augment import POLICIES, diff_augment, parse_policy
from facegen.models.msggan import pyramid


def _images(n=8, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("policy", [*POLICIES, "color,translation,cutout"])
def test_gradients_flow_through(policy):
    x = _images().requires_grad_(True)
    diff_augment(x, policy, _seeded()).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_seeded_generator_repeats_and_another_seed_differs():
    x, policy = _images(), "color,translation,cutout"
    assert torch.equal(diff_augment(x, policy, _seeded(1)), diff_augment(x, policy, _seeded(1)))
    assert not torch.equal(diff_augment(x, policy, _seeded(1)), diff_augment(x, policy, _seeded(2)))


def test_translation_moves_content_by_at_most_an_eighth_and_fills_the_border_with_zeros():
    n, size, reach = 16, 32, 4
    x = torch.full((n, 3, size, size), -1.0)
    x[:, :, 16, 16] = 1.0  # one bright pixel on black
    out = diff_augment(x, "translation", _seeded())
    moved = 0
    for sample in out:
        (_, row, col), *_ = (sample == 1).nonzero()
        dy, dx = row.item() - 16, col.item() - 16
        assert max(abs(dy), abs(dx)) <= reach
        expected = torch.zeros(3, size, size)  # uncovered border: 0
        expected[:, max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)] = -1.0
        expected[:, row, col] = 1.0
        assert torch.equal(sample, expected)
        moved += (dy, dx) != (0, 0)
    assert moved > n // 2


def test_cutout_fills_a_square_of_about_half_the_size_with_zero():
    size = 32
    out = diff_augment(torch.ones(16, 3, size, size), "cutout", _seeded())
    full_squares = 0
    for sample in out:
        cut = sample[0] == 0  # 0 (grey in [-1, 1]), as the official code's mask multiplies
        assert torch.equal(cut.expand(3, -1, -1), sample == 0) and torch.all(sample[:, ~cut] == 1)
        rows, cols = cut.any(1).nonzero().flatten(), cut.any(0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert cut.sum() == height * width  # one axis-aligned rectangle ...
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width
        assert size // 4 <= min(height, width) and max(height, width) <= size // 2  # ... a square clipped at the border
        full_squares += height == width == size // 2
    assert full_squares > 0


def test_color_changes_brightness_and_contrast_but_not_geometry():
    grey = _images(16)[:, :1].expand(-1, 3, -1, -1)  # saturation is a no-op on grey
    out = diff_augment(grey, "color", _seeded())
    assert (out.mean((1, 2, 3)) - grey.mean((1, 2, 3))).abs().max() > 0.1
    assert (out.std((1, 2, 3)) / grey.std((1, 2, 3)) - 1).abs().max() > 0.1
    for a, b in zip(grey, out):  # every pixel mapped by one increasing affine map: the picture is unmoved
        assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.9999


def test_the_same_policy_alters_reals_and_fakes_and_the_empty_one_neither():
    real, fake, noise = _images(seed=1), _images(seed=2), _seeded()
    for x in (real, fake):
        assert not torch.allclose(diff_augment(x, "color,translation,cutout", noise), x)
        assert diff_augment(x, "", noise) is x
    # Each call draws afresh: the same batch augmented twice is augmented differently.
    assert not torch.equal(diff_augment(real, "translation", noise), diff_augment(real, "translation", noise))


def test_policies_parse_and_unknown_names_list_the_valid_ones():
    assert parse_policy("color, translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy("") == ()
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'flip'; valid policies: color, translation, cutout"):
        parse_policy("color,flip")
    with pytest.raises(ValueError, match="valid policies"):
        diff_augment(_images(), ("rotate",))


def test_a_pyramid_is_augmented_as_one_image():
    x, policy = _images(4), "color,translation,cutout"
    scales = diff_augment(pyramid(x), policy, _seeded(3))
    assert [s.shape for s in scales] == [s.shape for s in pyramid(x)]
    assert torch.equal(scales[-1], diff_augment(x, policy, _seeded(3)))  # the finest scale as if alone
    # Colour commutes with average pooling: the augmented pyramid is the pyramid of the augmented image.
    coloured = diff_augment(pyramid(x), "color", _seeded(4))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(coloured, pyramid(diff_augment(x, "color", _seeded(4)))))
    # Cutout removes the same square at every scale: a coarse pixel is cut when its centre is.
    cut = [s[:, 0] == 0 for s in diff_augment(pyramid(torch.ones(8, 3, 32, 32)), "cutout", _seeded(5))]
    for coarse in cut[:-1]:
        f = 32 // coarse.shape[-1]
        assert torch.equal(coarse, cut[-1][:, f // 2::f, f // 2::f])
    assert F.avg_pool2d(cut[-1].float(), 32).mean() > 0


def test_same_size_batches_in_a_list_get_the_same_draws():
    x = _images(4)
    real, copy = diff_augment([x, x.clone()], "color,translation,cutout", _seeded(6))
    assert torch.equal(real, copy) and not torch.equal(real, x)  # a face and its reconstruction, augmented alike
