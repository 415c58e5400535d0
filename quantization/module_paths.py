"""Get and set submodules by dotted path."""
from torch import nn


def get_module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        raise KeyError(f'no module named {name!r} in {type(model).__name__}') from err


def set_module(model: nn.Module, name: str, module: nn.Module):
    """Replace the submodule at ``name`` (e.g. ``'backbone.blocks.0.1'``) by ``module``."""
    parent_name, _, child_name = name.rpartition('.')
    parent = get_module(model, parent_name) if parent_name else model
    if child_name not in parent._modules:
        raise KeyError(f'no module named {name!r} in {type(model).__name__}')
    parent._modules[child_name] = module
