from .checkpoint_hook import ATOMIC_BACKEND_ARGS, AtomicCheckpointHook
from .epoch_seed_hook import EpochSeedHook, epoch_seed, seed_epoch
from .qat_hook import QATHook

__all__ = [
    'QATHook', 'AtomicCheckpointHook', 'EpochSeedHook', 'ATOMIC_BACKEND_ARGS', 'epoch_seed',
    'seed_epoch'
]
