"""torchrun / DDP plumbing for the trainer: small wrappers over torch.distributed, no-ops in one process.

Under `torchrun` the environment holds RANK, WORLD_SIZE, MASTER_ADDR/PORT; `init_dist` starts the
process group from it (NCCL on GPUs, gloo on CPU). Every helper takes the world size and returns its
input unchanged when it is 1, so the single-process path runs no collective at all.
"""

from __future__ import annotations

import os

import torch


def init_dist(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether this call started the process group) under torchrun, else (0, 1, False)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, False
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.get_rank(), world, False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, True


def shard(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's contiguous slice of t; slice sizes differ by at most one."""
    n = len(t)
    return t[rank * n // world:(rank + 1) * n // world]


def broadcast(obj, world: int):
    if world == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(obj, world: int) -> list:
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def reduce_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def agree(flags: list[bool], world: int, device: torch.device) -> list[bool]:
    """A flag raised on any rank is raised on all of them."""
    if world == 1:
        return flags
    import torch.distributed as dist

    t = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [v > 0 for v in t.tolist()]


def broadcast_module(module: torch.nn.Module, world: int) -> None:
    """Rank 0's parameters and buffers of `module` on every rank."""
    if world == 1:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)
