"""AtomicCheckpointHook: MMEngine's CheckpointHook without the ways it loses work.

MMEngine's hook writes ``epoch_N.pth`` in place (a kill mid-write leaves a truncated file under
the final name), rewrites ``last_checkpoint`` in place, and deletes the oldest checkpoint
*before* the new one is written (with ``max_keep_ckpts=1`` a kill then leaves none). This hook
writes every checkpoint through :class:`~quantization.fileio.AtomicLocalBackend` (temporary name,
renamed when complete), updates ``last_checkpoint`` atomically after that, and only then deletes
the expired checkpoint; temporary files a killed writer left behind are removed when training
starts. Everything else (intervals, ``save_best``, ``max_keep_ckpts``,
``out_dir``) is MMEngine's.
"""
import glob
import os
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ..fileio import write_text_atomic

#: ``backend_args`` that make MMEngine's checkpoint writes atomic on a local disk.
ATOMIC_BACKEND_ARGS = dict(backend='atomic_local')


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints and ``last_checkpoint`` are written atomically.

    Args:
        **kwargs: :class:`mmengine.hooks.CheckpointHook`'s arguments; ``backend_args`` defaults to
            the atomic local backend (a remote backend given here is used as it is).
    """

    def __init__(self, **kwargs):
        if kwargs.get('backend_args') is None and kwargs.get('file_client_args') is None:
            kwargs['backend_args'] = dict(ATOMIC_BACKEND_ARGS)
        super().__init__(**kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process() or not osp.isdir(self.out_dir):
            return
        leftovers = glob.glob(osp.join(glob.escape(self.out_dir), '*.pth.tmp'))
        leftovers += glob.glob(osp.join(glob.escape(runner.work_dir), 'last_checkpoint.tmp'))
        for path in leftovers:
            os.remove(path)
        if leftovers:
            runner.logger.info(f'AtomicCheckpointHook: removed {len(leftovers)} unfinished '
                               f'checkpoint file(s) of an interrupted run: {leftovers}')

    def _expire(self, runner, step: int) -> Optional[int]:
        """Record ``step`` among the kept checkpoints; returns the step that falls out."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return None
        expired = None
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            expired = self.keep_ckpt_ids.popleft()
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return expired

    def _save_checkpoint_with_step(self, runner, step, meta):
        expired = self._expire(runner, step)
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        if expired is not None:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(expired))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # DeepSpeed checkpoints are folders
                self.file_backend.rmtree(path)
