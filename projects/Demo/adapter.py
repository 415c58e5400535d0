"""How the quantization flows (apis/) handle DemoNet."""
from typing import Sequence

from mmengine.config import Config
from torch import nn

from apis import ModelAdapter
from quantization import QuantRecipe
from .model import DemoNet


def check_demonet(model: nn.Module, source: str = 'the model config'):
    if not isinstance(model, DemoNet):
        raise ValueError(f'{source} does not build a DemoNet (got {type(model).__name__})')


def demonet_recipe(model: nn.Module, skip_layers: Sequence[str] = ()) -> QuantRecipe:
    """Every layer INT8 (BN folded, ReLU fused) but ``skip_layers``."""
    return QuantRecipe(skip_layers=skip_layers)


def qat_schedule(cfg: Config, lr: float, epochs: int, iters_per_epoch: int):
    """Cosine from ``lr`` to ``lr / 100`` over the QAT epochs (as demonet_shapes_qat.py)."""
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=epochs, eta_min=lr / 100)
    ]


DEMONET = ModelAdapter(
    name='DemoNet',
    check_model=check_demonet,
    make_recipe=demonet_recipe,
    metric_key='shapes/accuracy',
    qat_optimizer=qat_schedule)
