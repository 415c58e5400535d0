"""Work shared across ``torch.distributed`` ranks, with the same result as one process."""
from typing import Callable, List, Sequence, TypeVar

import torch.distributed as dist
from mmengine.dist import get_dist_info

Item = TypeVar('Item')
Result = TypeVar('Result')


def shared_map(fn: Callable[[Item], Result], items: Sequence[Item]) -> List[Result]:
    """``[fn(item) for item in items]`` with the items dealt round-robin over the ranks; every
    rank returns the whole list, in ``items`` order. Every rank must call it with equal items;
    ``fn`` must not make collective calls and its results must pickle."""
    rank, world = get_dist_info()
    mine = {index: fn(items[index]) for index in range(rank, len(items), world)}
    if world == 1:
        return [mine[index] for index in range(len(items))]
    gathered = [None] * world
    dist.all_gather_object(gathered, mine)
    merged = {index: result for part in gathered for index, result in part.items()}
    return [merged[index] for index in range(len(items))]
