"""Multi-process runs from mmdet3d's ``--launcher`` flag, on GPUs and on the CPU, and ``--device``.

With CUDA, MMEngine's ``init_dist`` starts the process group (NCCL by default). Without CUDA it
cannot: it calls ``torch.cuda.set_device`` for every launcher. :func:`init_launcher` then reads
the launcher's environment variables itself and starts a gloo group, and
:func:`distributed_runner_cfg` makes the Runner wrap the model in
:class:`CPUDistributedDataParallel` (MMEngine passes ``device_ids=[LOCAL_RANK]``, which DDP
refuses for a CPU module). Nothing installed is patched.
"""
import os
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dist import init_dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from quantization.errors import UserError

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

# Where each launcher keeps rank, world size and local rank.
_LAUNCHER_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID'),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK'),
}


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper for a model on the CPU: ``device_ids`` dropped."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def _cpu_environment(launcher: str) -> None:
    """Set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (env:// rendezvous) from ``launcher``'s
    variables; refuse a launch that did not set them."""
    names = _LAUNCHER_ENV[launcher]
    missing = [name for name in names[:2] if name not in os.environ]
    if missing:
        raise UserError(f'--launcher {launcher}: {", ".join(missing)} not set; start the tool '
                        f'with the launcher (torchrun for pytorch, srun for slurm, mpirun for '
                        f'mpi) or pass --launcher none')
    if 'MASTER_ADDR' not in os.environ:
        if launcher == 'pytorch':
            raise UserError('--launcher pytorch: MASTER_ADDR not set; start with torchrun')
        raise UserError(f'--launcher {launcher} without CUDA: set MASTER_ADDR (and MASTER_PORT, '
                        'default 29500) to the address of rank 0')
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['RANK'] = os.environ[names[0]]
    os.environ['WORLD_SIZE'] = os.environ[names[1]]
    os.environ['LOCAL_RANK'] = os.environ.get(names[2], '0')


def init_launcher(launcher: str = 'none', backend: Optional[str] = None) -> bool:
    """Start ``torch.distributed`` for ``launcher`` unless it runs already.

    Args:
        launcher (str): One of :data:`LAUNCHERS`; 'none' starts nothing.
        backend (str, optional): Defaults to 'nccl' with CUDA, 'gloo' without.

    Returns:
        bool: Whether a process group runs (possibly of world size 1).
    """
    if launcher not in LAUNCHERS:
        raise UserError(f'--launcher {launcher}: choose one of {", ".join(LAUNCHERS)}')
    if launcher == 'none':
        return dist.is_available() and dist.is_initialized()
    if dist.is_initialized():
        return True
    if torch.cuda.is_available():
        init_dist(launcher, backend=backend or 'nccl')
    else:
        if backend not in (None, 'gloo'):
            raise UserError(f'distributed backend {backend} needs CUDA; this machine has none '
                            '(use gloo)')
        _cpu_environment(launcher)
        dist.init_process_group(backend='gloo')
    return True


def add_launcher_options(parser) -> None:
    """mmdet3d's ``--launcher`` and ``--local-rank`` (``torch.distributed.launch`` sets the
    latter; torchrun sets ``LOCAL_RANK``)."""
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='job launcher for multi-process runs (torchrun: pytorch)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help='set by torch.distributed.launch; torchrun sets LOCAL_RANK')


def close_launcher() -> None:
    """End a process group this process runs: every rank waits for the others (rank 0 may still
    be writing files), then the group is destroyed, so no rank exits inside a collective."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def distributed_runner_cfg(cfg: Config, launcher: str) -> Config:
    """Set ``cfg`` up for a Runner under ``launcher`` (after :func:`init_launcher`): the launcher,
    and on the CPU the gloo backend and the CPU DDP wrapper (a wrapper the config names is kept)."""
    cfg.launcher = launcher
    if launcher != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
        if cfg.get('model_wrapper_cfg') is None:
            cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel')
    return cfg


def resolve_device(device: Optional[str]) -> torch.device:
    """``--device``: None means CUDA (this rank's GPU) when available, else the CPU; a CUDA device
    on a machine without one is refused."""
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise UserError(f'--device {device}: {err}') from err
    if resolved.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserError(f'--device {device}: this machine has no CUDA device (use cpu)')
        if resolved.index is None:
            resolved = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)))
        torch.cuda.set_device(resolved)
    elif resolved.type != 'cpu':
        raise UserError(f'--device {device}: expected cpu, cuda or cuda:N')
    return resolved
