"""Saving and loading quantized checkpoints, with ``torch.load(weights_only=True)`` only.

A quantized checkpoint is MMEngine's layout, ``{'meta': {'quantization': recipe dict, ...},
'state_dict': ...}``, so MMEngine's runners and ``load_checkpoint`` read it too.

torch >= 2.6 loads with ``weights_only=True``; MMEngine's training checkpoints also hold its message
hub (HistoryBuffer objects and numpy values). :func:`allow_mmengine_checkpoint_globals` allow-lists
exactly those classes, here and nowhere else, instead of turning ``weights_only`` off (which would
let a malicious checkpoint run code).
"""
import codecs
import os
import pickle
import re
from typing import Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import save_checkpoint
from torch import nn

from .bias_correction import add_saved_biases
from .errors import error_line
from .fileio import atomic_output
from .recipe import QuantRecipe
from .tensor_quantizer import TensorQuantizer


def history_buffer_getattr(owner, name: str):
    """Stand-in for ``getattr`` in checkpoints: MMEngine pickles ``HistoryBuffer``'s statistics
    methods as ``getattr(HistoryBuffer, 'mean')``; nothing else may be looked up."""
    if owner is not HistoryBuffer or name not in ('min', 'max', 'current', 'mean'):
        raise ValueError(f'checkpoint asks for getattr({owner!r}, {name!r}); only '
                         'HistoryBuffer statistics methods are allowed')
    return getattr(owner, name)


#: The classes MMEngine 0.10 training checkpoints need beyond tensors and plain containers.
MMENGINE_CHECKPOINT_GLOBALS = [
    HistoryBuffer,
    (history_buffer_getattr, 'builtins.getattr'),
    codecs.encode,  # numpy arrays pickle their bytes as latin-1 text
    np.ndarray,
    np.dtype,
    np.core.multiarray._reconstruct,
    np.core.multiarray.scalar,
    *{type(np.dtype(name))
      for name in ('float64', 'float32', 'int64', 'int32', 'bool')},
]


#: How torch's weights_only unpickler names the global it refused.
_REFUSED_GLOBAL = re.compile(r'GLOBAL ([\w.]+)')
_UNPICKLER_REASON = re.compile(r'WeightsUnpickler error:\s*(\S[^\n]*)')


def allow_mmengine_checkpoint_globals():
    """Let ``torch.load(weights_only=True)`` read MMEngine checkpoints (idempotent)."""
    torch.serialization.add_safe_globals(MMENGINE_CHECKPOINT_GLOBALS)


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _REFUSED_GLOBAL.search(str(err))
        if refused is None:  # torch's text advises weights_only=False: quote its reason only
            reason = _UNPICKLER_REASON.search(str(err))
            raise ValueError(f'cannot load checkpoint {path}: not a torch checkpoint, or a damaged '
                             f'one ({reason.group(1) if reason else "unpickling failed"})') from err
        raise ValueError(
            f'refused to load checkpoint {path}: it holds {refused.group(1)}, which is not on '
            'the weights_only allow-list (quantization/checkpoint.py), so it could run code on '
            'load; re-save its state_dict from a trusted environment') from err
    except Exception as err:  # truncated or not a torch file at all
        raise ValueError(f'cannot load checkpoint {path}: {type(err).__name__}: '
                         f'{error_line(err)[:200]}') from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f'checkpoint {path} holds a {type(checkpoint).__name__}, not a dict')
    return checkpoint


#: Format of quantized checkpoints (``meta['quantization_format']``). 2: the format key and
#: versioned quantizer state; 1 (files without the key) has the same layout and loads as is.
CHECKPOINT_FORMAT = 2

# pytorch-quantization's names of quantizers and their amax, and ours
_PYTORCH_QUANTIZATION_NAMES = (('._input_quantizer.', '.input_quantizer.'),
                               ('._weight_quantizer.', '.weight_quantizer.'))


def from_pytorch_quantization(state_dict: dict, model: nn.Module) -> dict:
    """A state_dict in NVIDIA pytorch-quantization's layout (``conv._input_quantizer._amax``,
    ``conv._weight_quantizer._amax``, as CUDA-CenterPoint's and AWML's BEVFusion QAT checkpoints
    hold) in ours (``conv.input_quantizer.amax``); the enable flags, which that layout does not
    store, are taken from ``model``. Other state_dicts are returned unchanged."""
    if not any(key.endswith('_quantizer._amax') for key in state_dict):
        return state_dict
    converted = {}
    for key, value in state_dict.items():
        if key.endswith('_quantizer._amax'):
            key = key[:-len('._amax')] + '.amax'
        for theirs, ours in _PYTORCH_QUANTIZATION_NAMES:
            key = key.replace(theirs, ours)
        converted[key] = value
    for name, buffer in model.state_dict().items():
        if name.endswith('_quantizer.enabled') and name[:-len('enabled')] + 'amax' in converted:
            converted.setdefault(name, buffer.clone())
    return converted


def _state_dict_of(checkpoint: dict) -> dict:
    return checkpoint.get('state_dict', checkpoint)


def is_quantized_state_dict(state_dict: dict) -> bool:
    return any(key.endswith('_quantizer.amax') for key in state_dict)


def has_quantizers(model: nn.Module) -> bool:
    return any(isinstance(m, TensorQuantizer) for m in model.modules())


def _listing(keys) -> str:
    keys = sorted(keys)
    return ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')


def load_state_dict_strict(model: nn.Module, state_dict: dict, source: str):
    """Load with ``strict=True``; a mismatch names the missing and unexpected keys.

    A float checkpoint into a quantized model, and the reverse, get their own message. A
    pytorch-quantization state_dict is mapped to our layout first
    (:func:`from_pytorch_quantization`).
    """
    state_dict = from_pytorch_quantization(state_dict, model)
    if has_quantizers(model) and not is_quantized_state_dict(state_dict):
        raise ValueError(f'{source} is a float checkpoint (no quantizer amax) but the model is '
                         'quantized: load it into the float model, then run PTQ or QAT')
    if not has_quantizers(model) and is_quantized_state_dict(state_dict):
        raise ValueError(f'{source} is a quantized checkpoint but the model is float: load it with '
                         'load_quantized_checkpoint, which rebuilds the quantized structure first')
    model_keys = set(model.state_dict())
    missing, unexpected = model_keys - set(state_dict), set(state_dict) - model_keys
    if missing or unexpected:
        raise KeyError(
            f'{source} does not fit {type(model).__name__}: missing keys [{_listing(missing)}]'
            f'; unexpected keys [{_listing(unexpected)}]')
    model_state = model.state_dict()
    wrong_shapes = [
        f'{key} {tuple(value.shape)} vs model {tuple(model_state[key].shape)}'
        for key, value in state_dict.items() if isinstance(value, torch.Tensor)
        and not key.endswith('.amax') and value.shape != model_state[key].shape
    ]
    if wrong_shapes:
        raise ValueError(f'{source} does not fit {type(model).__name__}: shapes differ for '
                         f'[{_listing(wrong_shapes)}]')
    model.load_state_dict(state_dict, strict=True)


def save_quantized_checkpoint(model: nn.Module,
                              path: str,
                              recipe: QuantRecipe,
                              meta: Optional[dict] = None):
    """Save ``model`` (quantized with ``recipe``) with MMEngine's ``save_checkpoint``, atomically:
    written to ``path.tmp`` and renamed when complete; a failed save leaves neither file (an
    OSError becomes :class:`~quantization.fileio.OutputError` naming ``path`` and why)."""
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    checkpoint = {
        'meta': {
            **(meta or {}), 'quantization': recipe.to_dict(),
            'quantization_format': CHECKPOINT_FORMAT
        },
        'state_dict': state_dict
    }
    with atomic_output(path) as tmp_path:
        save_checkpoint(checkpoint, tmp_path)


def load_quantized_checkpoint(model: nn.Module, path: str, map_location='cpu') -> QuantRecipe:
    """Rebuild the quantized structure on a float ``model`` from the checkpoint's recipe, then
    load its state_dict strictly. Returns the recipe."""
    checkpoint = load_checkpoint_file(path, map_location)
    if checkpoint.get('meta', {}).get('quantization') is None:
        raise ValueError(f'{path} holds no quantization recipe (meta.quantization): it is a float '
                         'checkpoint; quantize the model with PTQ or QAT first')
    return _load_quantized(model, checkpoint, path)


def _load_quantized(model: nn.Module, checkpoint: dict, path: str) -> QuantRecipe:
    """Apply ``checkpoint``'s recipe to the float ``model`` and load its state_dict strictly."""
    if has_quantizers(model):
        raise ValueError(
            f'cannot load {path}: the model is already quantized; pass the float model')
    written = checkpoint['meta'].get('quantization_format', 1)
    if written > CHECKPOINT_FORMAT:
        raise ValueError(f'{path} has quantization format {written}, newer than this toolkit '
                         f'reads ({CHECKPOINT_FORMAT}): update the toolkit')
    recipe = QuantRecipe.from_dict(checkpoint['meta']['quantization'])
    recipe.apply(model)
    state_dict = _state_dict_of(checkpoint)
    add_saved_biases(model, state_dict)
    load_state_dict_strict(model, state_dict, path)
    return recipe


def load_model_checkpoint(model: nn.Module, path: str, map_location='cpu') -> str:
    """Load a float or a quantized checkpoint into the float ``model``: a quantized one first
    rebuilds its recipe's structure. Returns ``'quantized'`` or ``'float'``."""
    checkpoint = load_checkpoint_file(path, map_location)
    if checkpoint.get('meta', {}).get('quantization') is not None:
        _load_quantized(model, checkpoint, path)
        return 'quantized'
    load_state_dict_strict(model, _state_dict_of(checkpoint), path)
    return 'float'
