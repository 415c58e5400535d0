"""What every quantization flow reads first, checked before any heavy work: the config, the float
model with its weights, the recipe, and the calibration / test data."""
import copy
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.dataset import DefaultSampler
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner
from torch import nn

from quantization import QuantRecipe, load_checkpoint_file, load_state_dict_strict
from quantization.errors import UserError
from quantization.toggle import match_quantizers
from .adapter import ModelAdapter
from .launcher import resolve_device
from .user_input import check_input_file, merge_cfg_options, read_config

CALIB_SPLITS = ('train', 'val')


@dataclass
class QuantInputs:
    """A flow's inputs: ``model`` is the float model in eval mode on ``device``."""
    cfg: Config
    model: nn.Module
    recipe: QuantRecipe
    calib_loader: object
    test_loader: object
    device: torch.device


def load_config(config: Union[str, Config], cfg_options: Optional[dict] = None) -> Config:
    """A config file (read with one-line errors) or a Config (copied), ``cfg_options`` merged."""
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        cfg = read_config(config, 'config', required=('model', ))
    if cfg_options:
        merge_cfg_options(cfg, cfg_options)
    return cfg


def whole_dataset(loader, key: str):
    """``loader`` (config key ``key``) made to yield the whole dataset on every distributed rank
    (its DefaultSampler shards it otherwise): for ranks that each work as one process would."""
    sampler = loader.sampler
    if not isinstance(sampler, DefaultSampler):
        raise UserError(f'{key}.sampler: {type(sampler).__name__} cannot be unsharded; use '
                        'DefaultSampler')
    sampler.rank, sampler.world_size = 0, 1
    sampler.num_samples = sampler.total_size = len(sampler.dataset)
    return loader


def _check_patterns(model: nn.Module, recipe: QuantRecipe, layer_patterns: Sequence[str]):
    """Apply ``recipe`` to a copy of ``model``: unknown skip or layer patterns are reported now,
    not after the float evaluation."""
    probe = copy.deepcopy(model)
    try:
        recipe.apply(probe)
        if layer_patterns:
            match_quantizers(probe, layer_patterns)
    except KeyError as err:
        raise UserError(f'--skip-layers / --layers: {err.args[0]}') from err


def load_inputs(config: Union[str, Config],
                checkpoint: str,
                adapter: ModelAdapter,
                skip_layers: Optional[Sequence[str]] = None,
                calib_split: str = 'train',
                layer_patterns: Sequence[str] = (),
                cfg_options: Optional[dict] = None,
                device: Optional[str] = None,
                whole_data: bool = False) -> QuantInputs:
    """Read and check everything a flow needs (the config first, the datasets last).

    Args:
        skip_layers: Layers left in float; None: the adapter's default list.
        whole_data: Every distributed rank iterates the whole calibration and test sets (else
            its shard of each).
    """
    if calib_split not in CALIB_SPLITS:
        raise UserError(f'calib_split {calib_split}: choose one of {", ".join(CALIB_SPLITS)}')
    cfg = load_config(config, cfg_options)
    source = f'config {config}' if isinstance(config, str) else 'the config'
    check_input_file(checkpoint, 'checkpoint')
    resolved = resolve_device(device)
    if cfg.get('default_scope'):
        init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    adapter.check_model(model, source)
    state = load_checkpoint_file(checkpoint)
    if state.get('meta', {}).get('quantization'):
        raise UserError(f'{checkpoint} is already quantized; pass the float checkpoint')
    load_state_dict_strict(model, state.get('state_dict', state), checkpoint)
    skip = adapter.default_skip_layers if skip_layers is None else skip_layers
    recipe = adapter.make_recipe(model, skip)
    _check_patterns(model, recipe, layer_patterns)
    calib_loader = Runner.build_dataloader(cfg[f'{calib_split}_dataloader'], seed=0)
    test_loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    if whole_data:
        whole_dataset(calib_loader, f'{calib_split}_dataloader')
        whole_dataset(test_loader, 'test_dataloader')
    return QuantInputs(cfg, model.to(resolved).eval(), recipe, calib_loader, test_loader,
                       resolved)
