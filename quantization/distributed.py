"""Work shared across ``torch.distributed`` ranks, with the same result as one process."""
from typing import Callable, List, Sequence, TypeVar

import torch
import torch.distributed as dist

Item = TypeVar('Item')
Result = TypeVar('Result')


def rank_and_world() -> tuple:
    """``(rank, world_size)``; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def collective_device() -> torch.device:
    """Where a tensor for a collective call must live: this rank's GPU under NCCL, else the CPU."""
    if dist.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def all_reduce_sum(value: int) -> int:
    """The sum of an int over all ranks."""
    total = torch.tensor([value], dtype=torch.int64, device=collective_device())
    dist.all_reduce(total)
    return int(total.item())


def shared_map(fn: Callable[[Item], Result], items: Sequence[Item]) -> List[Result]:
    """``[fn(item) for item in items]`` with the items dealt round-robin over the ranks; every
    rank returns the whole list, in ``items`` order. Every rank must call it with equal items;
    ``fn`` must not make collective calls and its results must pickle."""
    rank, world = rank_and_world()
    mine = {index: fn(items[index]) for index in range(rank, len(items), world)}
    if world == 1:
        return [mine[index] for index in range(len(items))]
    gathered = [None] * world
    dist.all_gather_object(gathered, mine)
    merged = {index: result for part in gathered for index, result in part.items()}
    return [merged[index] for index in range(len(items))]
