"""Find quantizers by name and switch them on or off by layer-name pattern."""
from fnmatch import fnmatchcase
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple, Union

from torch import nn

from .tensor_quantizer import TensorQuantizer

Patterns = Union[str, Sequence[str]]


def named_quantizers(model: nn.Module) -> Iterator[Tuple[str, TensorQuantizer]]:
    """Yield ``(name, quantizer)`` for every TensorQuantizer, stamping ``quantizer.name``."""
    for name, module in model.named_modules():
        if isinstance(module, TensorQuantizer):
            module.name = name
            yield name, module


def quant_layer_names(model: nn.Module) -> list:
    """Names of the modules that own quantizers (the layers sensitivity and skip lists talk of)."""
    layers = []
    for name, _ in named_quantizers(model):
        layer = name.rpartition('.')[0]
        if layer not in layers:
            layers.append(layer)
    return layers


def _as_list(patterns: Patterns) -> list:
    return [patterns] if isinstance(patterns, str) else list(patterns)


def name_matches(name: str, pattern: str) -> bool:
    """``name`` matches a glob ``pattern``, or lies under the module the pattern names."""
    return fnmatchcase(name, pattern) or name.startswith(pattern + '.') or fnmatchcase(
        name, pattern + '.*')


def match_quantizers(model: nn.Module, patterns: Patterns) -> Dict[str, TensorQuantizer]:
    """Quantizers whose name (or owning layer's name) matches any pattern.

    Raises:
        KeyError: naming every pattern that matches no quantizer.
    """
    patterns = _as_list(patterns)
    quantizers = dict(named_quantizers(model))
    matched, unmatched = {}, []
    for pattern in patterns:
        hits = {name: q for name, q in quantizers.items() if name_matches(name, pattern)}
        if not hits:
            unmatched.append(pattern)
        matched.update(hits)
    if unmatched:
        layers = quant_layer_names(model)
        raise KeyError(f'layer patterns {unmatched} match no quantizer; quantized layers are '
                       f'{layers[:8]}{" ..." if len(layers) > 8 else ""}')
    return matched


def disable_quantizers(model: nn.Module, patterns: Patterns) -> int:
    """Leave the matching layers in float; returns how many quantizers were disabled."""
    matched = match_quantizers(model, patterns)
    for quantizer in matched.values():
        quantizer.disable()
    return len(matched)


def enable_quantizers(model: nn.Module, patterns: Patterns) -> int:
    """Quantize the matching layers again; returns how many quantizers were enabled."""
    matched = match_quantizers(model, patterns)
    for quantizer in matched.values():
        quantizer.enable()
    return len(matched)


def enabled_state(model: nn.Module) -> Dict[str, bool]:
    """Snapshot of every quantizer's enable flag, for :func:`restore_enabled_state`."""
    return {name: q.is_enabled for name, q in named_quantizers(model)}


def restore_enabled_state(model: nn.Module, state: Dict[str, bool]):
    for name, quantizer in named_quantizers(model):
        quantizer.enable() if state.get(name, True) else quantizer.disable()


def set_all_quantizers(model: nn.Module, enabled: bool, names: Iterable[str] = None):
    """Enable or disable every quantizer (or those under the given layer names)."""
    names = None if names is None else list(names)
    for name, quantizer in named_quantizers(model):
        if names is None or any(name_matches(name, layer) for layer in names):
            quantizer.enable() if enabled else quantizer.disable()


def learn_activation_amax(model: nn.Module, state_dict: Optional[dict] = None) -> list:
    """Make the amax of every enabled activation quantizer a trained Parameter
    (:meth:`TensorQuantizer.learn_amax`); weights keep theirs (max of the current weights).

    Args:
        model (nn.Module): Quantized, with amax set on those quantizers, or given in
            ``state_dict``.
        state_dict (dict, optional): The model's state (a checkpoint being loaded): amax values
            found there are set first, so a resumed run learns from where it stopped.

    Returns:
        list: The amax Parameters, in module order (for an optimizer param group).
    """
    learned = []
    for name, quantizer in named_quantizers(model):
        if not quantizer.is_enabled or quantizer.role == 'weight':
            continue
        saved = (state_dict or {}).get(f'{name}.amax')
        if saved is not None and saved.numel() > 0:
            quantizer.set_amax(saved)
        learned.append(quantizer.learn_amax())
    return learned
