"""The ptq / sensitivity / qat / deploy flows as functions that take configs and return results.

``tools/`` parse arguments, call these and print; demos and scripts call them directly. A model
family plugs in with a :class:`ModelAdapter` (``projects/<Model>/quantization/adapter.py``).
"""
from .adapter import ModelAdapter
from .deploy import deploy
from .launcher import (LAUNCHERS, close_launcher, distributed_runner_cfg, init_launcher,
                       resolve_device)
from .ptq import PTQResult, ptq
from .qat import QATResult, qat
from .sensitivity import SensitivityResult, sensitivity

__all__ = [
    'ModelAdapter', 'ptq', 'PTQResult', 'sensitivity', 'SensitivityResult', 'qat', 'QATResult',
    'deploy', 'LAUNCHERS', 'init_launcher', 'close_launcher', 'distributed_runner_cfg',
    'resolve_device'
]
