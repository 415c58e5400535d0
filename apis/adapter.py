"""What the quantization flows need to know about one model family."""
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from torch import nn

from quantization import QuantRecipe
from quantization.method_choice import ImportanceFn
from quantization.range_learning import DistanceFn


@dataclass
class ModelAdapter:
    """One model family, as the ptq / sensitivity / qat flows see it.

    Args:
        name (str): Shown in messages, e.g. ``'CenterPoint'``.
        check_model (callable): ``fn(model, source)`` raising ValueError when the config does not
            build this kind of model.
        make_recipe (callable): ``fn(float_model, skip_layers) -> QuantRecipe``.
        metric_key (str): Evaluator key reported and used by sensitivity, e.g. ``'det/mAP'``.
        default_method (str): amax method when none is given.
        default_skip_layers (sequence of str): Layers left in float when none are given.
        qat_optimizer (callable, optional): ``fn(cfg, lr, epochs, iters_per_epoch)`` setting the
            config's optimizer and schedule for QAT; None only sets the learning rate.
        table_prefix (str): Result tables show the metric keys starting with it (all: '').
        bias_correction (bool): PTQ corrects the biases by default
            (:func:`quantization.bias_correction.correct_bias`).
        qat_skip_layers (sequence of str, optional): QAT's layers left in float when none are
            given; None: ``default_skip_layers``.
        qat_bias_correction (bool, optional): QAT starts from the bias-corrected PTQ model by
            default; None: ``bias_correction``.
        qat_method (str, optional): QAT's amax method when none is given; None:
            ``default_method``.
        importance (callable, optional): ``fn(float_model, batch) -> (N, 1, H, W)`` position
            weights for the per-layer amax search
            (:data:`quantization.method_choice.ImportanceFn`); None weights every position alike.
        unweighted_layers (sequence of str): Layer patterns whose output error that search does
            not weight (their output matters everywhere).
        output_module (str, optional): The submodule whose output learned ranges match to the
            float model's (:func:`quantization.range_learning.learn_ranges`): the head or
            the logits; None: the model has none and ``--learn-ranges`` is refused.
        output_distance (callable, optional): ``fn(quantized_output, float_output) -> scalar``
            for that match; None: the relative squared error of every output tensor.
    """
    name: str
    check_model: Callable[[nn.Module, str], None]
    make_recipe: Callable[[nn.Module, Sequence[str]], QuantRecipe]
    metric_key: str
    default_method: str = 'mse'
    default_skip_layers: Sequence[str] = ()
    qat_optimizer: Optional[Callable] = None
    table_prefix: str = ''
    bias_correction: bool = False
    qat_skip_layers: Optional[Sequence[str]] = None
    qat_bias_correction: Optional[bool] = None
    qat_method: Optional[str] = None
    importance: Optional[ImportanceFn] = None
    unweighted_layers: Sequence[str] = ()
    output_module: Optional[str] = None
    output_distance: Optional[DistanceFn] = None

    def skip_layers_for(self, verb: str) -> Sequence[str]:
        """The layers ``verb`` ('ptq', 'qat', ...) leaves in float when none are given."""
        if verb == 'qat' and self.qat_skip_layers is not None:
            return self.qat_skip_layers
        return self.default_skip_layers

    def method_for(self, verb: str) -> str:
        """The amax method ``verb`` calibrates with when not told."""
        if verb == 'qat' and self.qat_method is not None:
            return self.qat_method
        return self.default_method

    def bias_correction_for(self, verb: str) -> bool:
        """Whether ``verb`` corrects the biases when not told."""
        if verb == 'qat' and self.qat_bias_correction is not None:
            return self.qat_bias_correction
        return self.bias_correction
