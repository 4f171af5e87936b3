"""Data-parallel training through PyTorch's own engine: `torchrun --nproc_per_node N -m facegen train ...`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs as one process. NCCL
joins CUDA devices, gloo joins CPU processes (how the tests run it on one machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: str = "auto"  # this rank's device under torchrun; "auto" when single-process

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes logs, previews and checkpoints."""
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        if self.size == 1:
            return module
        device_ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one, so that all ranks stop at the same step."""
        return bool(self.max(float(flag)))

    def max(self, value: float) -> float:
        """The largest of the ranks' values, on every rank (their clocks differ a little)."""
        if self.size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.startswith("cuda") else "cpu")
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.item()

    def close(self) -> None:
        """Leave the process group together: a rank tearing gloo down while rank 0 still writes its last
        checkpoint can abort ("terminate called without an active exception", seen once in CI)."""
        if self.size > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def init() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return World(rank, size, device)


def average_gradients(params: list[nn.Parameter]) -> None:
    """Average .grad across ranks, for steps that take gradients without DDP's backward hooks."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for p in params:
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(dist.get_world_size())


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over the ranks in place (a no-op in one process): statistics every rank must agree on."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module
