import pytest
import safetensors.torch
import torch

from facegen import checkpoint as ckpt
from facegen import models


def _checkpoint(**state):
    nets = models.build("dcgan", resolution=32, base_channels=4)
    opt = torch.optim.Adam(nets["G"].parameters())
    nets["G"](torch.randn(2, 100)).mean().backward()
    opt.step()
    roles = {role: net.state_dict() for role, net in nets.items()}
    return ckpt.Checkpoint("dcgan", {"resolution": 32, "base_channels": 4}, roles, {"step": 3, "opt": opt.state_dict(), **state}), nets


def test_round_trip_restores_weights_optimizer_and_state(tmp_path):
    original, nets = _checkpoint(fixed_z=torch.randn(4, 100), note="hi", pair=(1, 2.5))
    path = ckpt.save(tmp_path / "checkpoints" / "ckpt-0000003.safetensors", original)
    loaded = ckpt.load(tmp_path)  # a run directory resolves to its newest checkpoint
    assert loaded.path == path and loaded.family == "dcgan" and loaded.state["step"] == 3
    assert torch.equal(loaded.state["fixed_z"], original.state["fixed_z"]) and loaded.state["note"] == "hi"
    rebuilt = loaded.build()
    for role, net in nets.items():
        for key, value in net.state_dict().items():
            assert torch.equal(rebuilt[role].state_dict()[key], value), key
    opt = torch.optim.Adam(nets["G"].parameters())
    opt.load_state_dict(loaded.state["opt"])  # int keys and tensors survive
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], original.state["opt"]["state"][0]["exp_avg"])
    assert not list(tmp_path.rglob(".*.tmp"))  # the temporary file was renamed away


def test_newest_checkpoint_wins(tmp_path):
    for step in (20, 100, 3):
        ckpt.save(tmp_path / "checkpoints" / f"ckpt-{step:07d}.safetensors", _checkpoint()[0])
    assert ckpt.latest(tmp_path).name == "ckpt-0000100.safetensors"


def test_load_generator_rebuilds_from_the_file_alone(tmp_path):
    path = ckpt.save(tmp_path / "c.safetensors", _checkpoint()[0])
    G, loaded = ckpt.load_generator(path)
    assert not G.training and G.resolution == 32 and G(torch.randn(1, 100)).shape == (1, 3, 32, 32)


def test_foreign_files_are_refused_with_one_line(tmp_path):
    other = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a facegen checkpoint .*another program"):
        ckpt.load(other)
    pickle = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickle)
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        ckpt.load(pickle)
    with pytest.raises(ValueError, match="does not exist"):
        ckpt.load(tmp_path / "absent.safetensors")
    with pytest.raises(ValueError, match="has no checkpoints yet"):
        ckpt.load(tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    bad, _ = _checkpoint()
    bad.architecture = {"resolution": 64, "base_channels": 4}  # the weights are of a 32 px model
    path = ckpt.save(tmp_path / "c.safetensors", bad)
    with pytest.raises(ValueError, match="does not match its recorded dcgan model"):
        ckpt.load_generator(path)
