import pytest
import torch

from facegen.ada import AdaptiveAugment, ada_augment, parse_groups
from facegen.models.msggan import pyramid


def _images(n=8, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def _unchanged(out, x):
    """Per sample: left exactly as it was."""
    return (out == x).flatten(1).all(1)


def test_p_zero_is_the_identity_and_draws_nothing():
    x, gen = _images(), _seeded()
    state = gen.get_state()
    assert ada_augment(x, 0.0, "bgc", gen) is x
    scales = pyramid(_images(4, 32))
    assert ada_augment(scales, 0.0, "bgc", gen) is scales
    assert torch.equal(gen.get_state(), state)
    ada_augment(x, 0.5, "bgc", gen)  # any p above 0 draws: the check above can see a draw
    assert not torch.equal(gen.get_state(), state)


@pytest.mark.parametrize("p", [1.0, 0.5])
@pytest.mark.parametrize("groups", ["b", "g", "c", "bgc"])
def test_each_group_keeps_shape_and_dtype_is_finite_and_differentiable(groups, p):
    x = _images().requires_grad_(True)
    out = ada_augment(x, p, groups, _seeded())
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not torch.allclose(out, x)  # it did something
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    half = ada_augment(x.detach().bfloat16(), p, groups, _seeded())
    assert half.shape == x.shape and half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    x = x.detach()
    if groups in ("b", "g"):  # bilinear reads with reflection padding stay within each sample's range
        assert (out.detach().flatten(1).amin(1) >= x.flatten(1).amin(1) - 1e-6).all()
        assert (out.detach().flatten(1).amax(1) <= x.flatten(1).amax(1) + 1e-6).all()
    else:
        # The colour transforms, like the official ADA's, do not clamp: a brightened face may leave [-1, 1]. They are
        # still bounded: a shift of N(0, 0.2), a contrast of 2^N(0, 0.5), a rotation and a saturation of 2^N(0, 1).
        assert out.detach().abs().max() < 20


def test_a_flat_image_stays_flat_through_blit_and_geometry():
    x = torch.tensor([0.3, -0.5, 0.8]).view(1, 3, 1, 1).expand(8, 3, 16, 16).contiguous()
    out = ada_augment(x, 1.0, "bg", _seeded())
    assert torch.allclose(out, x, atol=1e-6)  # the border is filled by reflection, not by zeros


def test_a_grey_image_stays_grey_and_flat_through_colour():
    grey = (torch.rand(16, 1, 1, 1, generator=_seeded(1)) * 2 - 1).expand(16, 3, 16, 16).contiguous()
    out = ada_augment(grey, 1.0, "c", _seeded())
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 0], out[:, 2], atol=1e-5)
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out), atol=1e-5)  # each sample spatially constant
    assert ((out - grey)[:, 0, 0, 0].abs() > 1e-3).float().mean() > 0.5  # brightness and contrast did act on grey


def _mirrored_shift(x, dy, dx):
    """x read at (row + dy, col + dx), mirrored about the image's edges (what reflection padding with
    align_corners=False does to whole-pixel moves: the border pixel repeats)."""
    n = x.shape[-1]

    def index(d):
        i = torch.arange(n) + d
        return torch.where(i < 0, -1 - i, torch.where(i >= n, 2 * n - 1 - i, i))

    return x[..., index(dy), :][..., index(dx)]


def test_blit_moves_whole_pixels_a_flip_quarter_turns_and_at_most_an_eighth():
    size, reach = 16, 2  # an eighth of 16
    x = _images(16, size, seed=2)
    out = ada_augment(x, 1.0, "b", _seeded())
    # Every output pixel is one of the same sample's and channel's input pixels.
    nearest = (out.flatten(2)[..., :, None] - x.flatten(2)[..., None, :]).abs().amin(-1)
    assert nearest.max() < 1e-5
    # More: each sample is one of the 8 flips/turns of its input, shifted by whole pixels (at most `reach`).
    shifted = moved = 0
    for a, b in zip(x, out):
        found = None
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                s = _mirrored_shift(a, dy, dx)
                for flip in (False, True):
                    for k in range(4):
                        if torch.allclose(torch.rot90(s.flip(-1) if flip else s, k, (-2, -1)), b, atol=1e-5):
                            found = (dy, dx, flip, k)
        assert found is not None
        shifted += found[:2] != (0, 0)
        moved += found != (0, 0, False, 0)
    assert shifted > 0 and moved > len(x) // 2


@pytest.mark.parametrize("groups, expected", [
    ("c", 0.8 ** 4 * (0.8 + 0.2 * 0.5)),  # a luma flip, when applied, draws 'no flip' half the time
    ("b", (0.8 + 0.2 * 0.5) * (0.8 + 0.2 * 0.25) * (0.8 + 0.2 * 0.25)),  # no flip; 0 quarters; both shifts round to 0 at 8 px
    ("g", 0.8 ** 4),  # the two rotations, each with chance 1 - sqrt(1 - p), together count as one transform of chance p
])
def test_p_decides_how_often_each_transform_is_applied(groups, expected):
    x = _images(2048, 8, seed=3)
    share = _unchanged(ada_augment(x, 0.2, groups, _seeded()), x).float().mean().item()
    assert abs(share - expected) < 0.04, share  # about 3.5 standard deviations of the share over 2048 samples


def test_a_seeded_generator_repeats_and_another_seed_differs():
    x = _images()
    assert torch.equal(ada_augment(x, 0.5, "bgc", _seeded(1)), ada_augment(x, 0.5, "bgc", _seeded(1)))
    assert not torch.equal(ada_augment(x, 0.5, "bgc", _seeded(1)), ada_augment(x, 0.5, "bgc", _seeded(2)))


def test_same_size_batches_in_a_list_get_the_same_draws():
    x = _images(4)
    real, copy = ada_augment([x, x.clone()], 1.0, "bgc", _seeded(6))
    assert torch.equal(real, copy) and not torch.allclose(real, x)
    assert torch.equal(real, ada_augment(x, 1.0, "bgc", _seeded(6)))  # as if alone


def test_a_pyramid_is_augmented_as_one_image_and_must_go_coarsest_first():
    x = _images(4, 32)
    scales = ada_augment(pyramid(x), 1.0, "bgc", _seeded(3))
    assert [s.shape for s in scales] == [s.shape for s in pyramid(x)]
    assert torch.equal(scales[-1], ada_augment(x, 1.0, "bgc", _seeded(3)))  # the finest scale as if alone
    # Colour commutes with average pooling: one draw per sample makes the augmented pyramid the augmented image's.
    coloured = ada_augment(pyramid(x), 1.0, "c", _seeded(4))
    expected = pyramid(ada_augment(x, 1.0, "c", _seeded(4)))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(coloured, expected))
    with pytest.raises(ValueError, match="coarsest first"):
        ada_augment(pyramid(x)[::-1], 1.0, "bgc", _seeded())


def test_colour_needs_rgb_and_geometry_does_not():
    grey = _images()[:, :1]
    with pytest.raises(ValueError, match="RGB"):
        ada_augment(grey, 1.0, "bgc", _seeded())
    assert ada_augment(grey, 1.0, "bg", _seeded()).shape == grey.shape


def test_groups_parse_in_a_fixed_order_and_unknown_letters_list_the_valid_ones():
    assert parse_groups("bgc") == "bgc" and parse_groups("cb") == "bc" and parse_groups("g") == "g"
    for bad in ("", "bx", "BGC"):
        with pytest.raises(ValueError, match="b, g, c"):
            parse_groups(bad)


def _steer(ada, steps, logits, images_per_step):
    """Run steps `steps` observing `logits` once each; return p after each step."""
    ps = []
    for step in steps:
        ada.observe(logits)
        ada.update(step, images_per_step)
        ps.append(ada.p.item())
    return ps


def test_the_controller_moves_p_every_interval_by_the_images_seen_and_clips():
    delta = 8 * 4 / (0.1 * 1000)  # images per step x interval / (kimg x 1000) = 0.32
    ada = AdaptiveAugment("bgc", target=0.6, interval=4, kimg=0.1)
    ps = _steer(ada, range(1, 21), torch.ones(4), images_per_step=8)  # D always sure of the reals: r_t = 1
    assert ps[:3] == [0.0] * 3 and ps[3] == pytest.approx(delta) and ps[4:7] == [ps[3]] * 3
    assert ps[7] == pytest.approx(2 * delta) and ps[11] == pytest.approx(3 * delta) and ps[15] == ps[19] == 1.0
    assert ada.rt.item() == 1.0 and torch.equal(ada.signs, torch.zeros(2))  # the sums start afresh after each move
    ps = _steer(ada, range(21, 41), -torch.ones(4), images_per_step=8)  # never sure: p falls as fast, to 0
    assert ps[:3] == [1.0] * 3 and ps[3] == pytest.approx(1 - delta) and ps[11] == pytest.approx(1 - 3 * delta)
    assert ps[15] == ps[19] == 0.0 and ada.rt.item() == -1.0


def test_the_controller_compares_r_t_with_the_target():
    logits = torch.tensor([1.0, 2.0, 3.0, -1.0])  # r_t = 0.5: positive but below the target
    ada = AdaptiveAugment("c", target=0.6, interval=2, kimg=1.0, p=0.5)
    _steer(ada, [1, 2], logits, images_per_step=100)
    assert ada.rt.item() == 0.5 and ada.p.item() == pytest.approx(0.3)
    ada = AdaptiveAugment("c", target=0.5, interval=2, kimg=1.0, p=0.5)
    _steer(ada, [1, 2], logits, images_per_step=100)
    assert ada.p.item() == 0.5  # on target: p stays
    ada.update(4, 100)  # nothing observed since: nothing to steer by
    assert ada.p.item() == 0.5 and ada.rt.item() == 0.5


def test_the_controller_state_resumes_exactly_even_mid_interval():
    make = lambda: AdaptiveAugment("bgc", target=0.6, interval=4, kimg=0.1)  # noqa: E731
    ada = make()
    _steer(ada, range(1, 7), torch.ones(4), images_per_step=8)  # an adjustment at 4, two steps into the next interval
    state = ada.state_dict()
    assert set(state) == {"p", "rt", "signs"} and state["signs"][1] == 8
    resumed = make()
    resumed.load_state_dict(state)
    assert torch.equal(resumed.p, ada.p) and torch.equal(resumed.rt, ada.rt) and torch.equal(resumed.signs, ada.signs)
    # Steps 7-8 alone would put r_t at 0.5, below the target; with steps 5-6 carried over it is 0.75, above.
    logits = [torch.tensor([1.0, 1.0, 1.0, -1.0])] * 2 + [torch.randn(4, generator=_seeded(s)) for s in range(12)]
    for step, real_logits in enumerate(logits, start=7):
        for a in (ada, resumed):
            a.observe(real_logits)
            a.update(step, 8)
        assert torch.equal(resumed.p, ada.p) and torch.equal(resumed.signs, ada.signs)
        if step == 8:
            assert ada.rt.item() == 0.75 and ada.p.item() == pytest.approx(2 * 0.32)
    x = _images()
    assert torch.equal(resumed(x, _seeded(5)), ada(x, _seeded(5)))
    assert torch.equal(ada(x, _seeded(5)), ada_augment(x, ada.p.item(), "bgc", _seeded(5)))
