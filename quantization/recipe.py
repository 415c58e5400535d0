"""QuantRecipe: everything needed to turn a float model into its quantized structure.

A quantized checkpoint stores ``recipe.to_dict()`` in its metadata, so the same structure can be
rebuilt on a fresh float model before its state_dict (with the amax buffers) is loaded.
"""
from dataclasses import asdict, dataclass, fields
from typing import Callable, Dict, Optional, Sequence, Tuple

from mmengine.registry import Registry
from torch import nn

from .descriptor import QuantDescriptor, as_descriptor
from .equalization import equalize
from .fusion import fuse_bn, fuse_relu
from .replace import quantize_model
from .toggle import disable_quantizers

#: Structural changes a model needs before quantization (e.g. a functional ``torch.cat`` turned
#: into a :class:`~quantization.nn.Concat` module), registered by projects under a name a recipe
#: (and so a checkpoint) can list: ``fn(model) -> int`` (how many places it changed).
MODEL_PREPARATIONS = Registry('model preparation')
#: Functions ``fn(float_model, **kwargs) -> QuantRecipe`` of one model family (a recipe that
#: depends on the model, e.g. its BatchNorm pairs), named in configs as ``dict(type=name, ...)``.
RECIPE_BUILDERS = Registry('quantization recipe builder')


def _preparation(name: str) -> Callable[[nn.Module], int]:
    preparation = MODEL_PREPARATIONS.get(name)
    if preparation is None:
        raise KeyError(f'unknown model preparation {name!r}: import the project that registers '
                       f'it (custom_imports); known: {sorted(MODEL_PREPARATIONS.module_dict)}')
    return preparation


@dataclass
class QuantRecipe:
    """Settings of the quantization passes, applied in order by :meth:`apply`.

    Args:
        include (Sequence[str]): Module-name globs to quantize. Defaults to all.
        exclude (Sequence[str]): Module-name globs never quantized. Defaults to none.
        quant_desc_input (dict, optional): Fields of the input quantizers' descriptor.
        quant_desc_weight (dict, optional): ``{quantized class name: descriptor fields}``.
        fold_bn (bool): Fold BatchNorm into the layer before it. Defaults to True.
        bn_pairs (Sequence[tuple]): ``(layer, bn)`` pairs to fold besides those found.
        fuse_relu (bool): Move ReLUs into the quantized layer before them. Defaults to True.
        equalize (bool): Cross-layer equalization of consecutive layers joined by a ReLU (or
            nothing), on the folded float weights; exact in float. Defaults to False.
        skip_layers (Sequence[str]): Layer patterns whose quantizers stay disabled (float).
        preparations (Sequence[str]): Names in ``MODEL_PREPARATIONS`` run first, in order.
    """

    include: Sequence[str] = ('*', )
    exclude: Sequence[str] = ()
    quant_desc_input: Optional[dict] = None
    quant_desc_weight: Optional[Dict[str, dict]] = None
    fold_bn: bool = True
    bn_pairs: Sequence[Tuple[str, str]] = ()
    fuse_relu: bool = True
    equalize: bool = False
    skip_layers: Sequence[str] = ()
    preparations: Sequence[str] = ()

    def __post_init__(self):
        self.include = list(self.include)
        self.exclude = list(self.exclude)
        self.bn_pairs = [list(pair) for pair in self.bn_pairs]
        self.skip_layers = list(self.skip_layers)
        self.preparations = list(self.preparations)
        for name in self.preparations:
            _preparation(name)
        for pair in self.bn_pairs:
            if len(pair) != 2:
                raise ValueError(f'QuantRecipe.bn_pairs: expected (layer, bn) pairs, got {pair}')
        # Validate descriptors now, store plain dicts (checkpoint metadata stays plain data).
        if self.quant_desc_input is not None:
            self.quant_desc_input = as_descriptor(self.quant_desc_input).to_dict()
        if self.quant_desc_weight is not None:
            self.quant_desc_weight = {
                cls_name: as_descriptor(desc).to_dict()
                for cls_name, desc in self.quant_desc_weight.items()
            }

    def apply(self, model: nn.Module) -> Dict[str, int]:
        """Quantize ``model`` in place; returns the count of each pass."""
        weight_descs = {
            k: QuantDescriptor.from_dict(v)
            for k, v in (self.quant_desc_weight or {}).items()
        }
        input_desc = as_descriptor(self.quant_desc_input)
        prepared = sum(_preparation(name)(model) for name in self.preparations)
        counts = {'prepared': prepared} if self.preparations else {}
        counts['replaced'] = quantize_model(model, self.include, self.exclude, input_desc,
                                            weight_descs)
        counts['bn_folded'] = fuse_bn(model, extra_pairs=self.bn_pairs) if self.fold_bn else 0
        counts['relu_fused'] = fuse_relu(model) if self.fuse_relu else 0
        if self.equalize:
            counts['equalized'] = equalize(model)
        counts['skipped'] = disable_quantizers(model, self.skip_layers) if self.skip_layers else 0
        return counts

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> 'QuantRecipe':
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise KeyError(f'QuantRecipe: unknown keys {unknown}; known keys are {sorted(known)}')
        return cls(**settings)


def build_recipe(settings: dict, model: nn.Module) -> QuantRecipe:
    """A recipe from config: ``dict(type=builder name, **kwargs)`` calls a registered builder
    with ``model``; otherwise the dict holds :class:`QuantRecipe` fields."""
    settings = dict(settings)
    if 'type' not in settings:
        return QuantRecipe.from_dict(settings)
    name = settings.pop('type')
    builder = RECIPE_BUILDERS.get(name)
    if builder is None:
        raise KeyError(f'unknown recipe builder {name!r}: import the project that registers it '
                       f'(custom_imports); known: {sorted(RECIPE_BUILDERS.module_dict)}')
    return builder(model, **settings)
