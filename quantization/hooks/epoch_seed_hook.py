"""EpochSeedHook: every epoch's randomness is a function of the run's seed and the epoch alone.

A run resumed from the checkpoint of epoch N then draws the same augmentations, shuffles,
dropout masks and worker seeds in epoch N + 1 as the run that was never interrupted, whatever
happened in between (calibration, validation, the DataLoader's own draws). Saving the generator
states in the checkpoint is not enough: validation after the save draws from them in the
uninterrupted run only. The sampler is seeded by ``seed + epoch`` (MMEngine's
``DistSamplerSeedHook``) and workers by MMEngine's ``worker_init_fn``; workers kept alive across
epochs (``persistent_workers=True``) carry their state over and are warned about.
"""
import numpy as np
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import set_random_seed


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for ``epoch`` of a run seeded with ``seed`` (well mixed, so neighbouring
    epochs and runs do not share streams)."""
    return int(np.random.SeedSequence([seed % 2**32, epoch]).generate_state(1)[0])


def seed_epoch(runner) -> int:
    """Seed Python's, numpy's, torch's and CUDA's generators for ``runner.epoch``; returns it."""
    seed = epoch_seed(runner.seed, runner.epoch)
    set_random_seed(seed)
    return seed


def warn_persistent_workers(runner) -> None:
    loader_cfg = runner.cfg.get('train_dataloader') or {}
    if loader_cfg.get('persistent_workers') and loader_cfg.get('num_workers', 0) > 0:
        runner.logger.warning('train_dataloader.persistent_workers=True: its workers keep their '
                              'random state across epochs, so a resumed run draws other '
                              'augmentations; set it to False for bit-exact resume')


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed all generators at the start of every training epoch from ``(runner.seed, epoch)``."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        warn_persistent_workers(runner)

    def before_train_epoch(self, runner) -> None:
        seed_epoch(runner)
