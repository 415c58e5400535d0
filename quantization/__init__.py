"""INT8 quantization for MMEngine models: quantizers, calibrators, quant modules and passes.

Importing this package registers the quantized modules in MMEngine's ``MODELS`` registry and
``QATHook`` in ``HOOKS`` (use ``custom_imports = dict(imports=['quantization'])`` in configs), and
allow-lists the classes MMEngine checkpoints need for ``torch.load(weights_only=True)``.
"""
from .calib import HistogramCalibrator, MaxCalibrator
from .calibration import CalibrationManager, default_forward
from .checkpoint import (CHECKPOINT_FORMAT, allow_mmengine_checkpoint_globals,
                         from_pytorch_quantization, load_checkpoint_file,
                         load_model_checkpoint, load_quantized_checkpoint, load_state_dict_strict,
                         save_quantized_checkpoint)
from .descriptor import (QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL,
                         QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL,
                         QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_TENSOR,
                         QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW, QUANT_DESC_8BIT_PER_TENSOR,
                         QUANT_DESC_8BIT_PER_TENSOR_MAX, QuantDescriptor)
from .fusion import find_bn_pairs, find_relu_pairs, fold_bn, fuse_bn, fuse_relu
from .errors import UserError
from .fileio import OutputError, atomic_output
from .hooks import AtomicCheckpointHook, EpochSeedHook, QATHook
from .evaluation import evaluate_model
from .nn import (Add, Concat, Mul, QuantAdd, QuantConcat, QuantConv2d, QuantConvTranspose2d,
                 QuantLinear, QuantMul)
from .ptq import quantize_and_calibrate
from .recipe import MODEL_PREPARATIONS, RECIPE_BUILDERS, QuantRecipe, build_recipe
from .replace import quantize_model
from .resume import last_complete_checkpoint, resolve_start
from .summary import print_quant_summary, quant_summary
from .sensitivity import (greedy_skip_search, layer_sensitivity, plot_sensitivity,
                          save_sensitivity_csv)
from .tensor_quantizer import TensorQuantizer
from .toggle import (disable_quantizers, enable_quantizers, named_quantizers, quant_layer_names)

allow_mmengine_checkpoint_globals()

__all__ = [
    'QuantDescriptor', 'TensorQuantizer', 'MaxCalibrator', 'HistogramCalibrator',
    'CalibrationManager', 'default_forward', 'QuantConv2d', 'QuantConvTranspose2d', 'QuantLinear',
    'QuantAdd', 'QuantConcat', 'QuantMul', 'Add', 'Concat', 'Mul', 'quantize_model', 'fold_bn',
    'fuse_bn', 'find_bn_pairs', 'fuse_relu', 'find_relu_pairs', 'disable_quantizers',
    'enable_quantizers', 'named_quantizers', 'quant_layer_names', 'layer_sensitivity',
    'greedy_skip_search', 'save_sensitivity_csv', 'plot_sensitivity', 'QATHook',
    'AtomicCheckpointHook', 'EpochSeedHook', 'last_complete_checkpoint', 'resolve_start',
    'atomic_output', 'OutputError', 'UserError', 'QuantRecipe',
    'MODEL_PREPARATIONS', 'RECIPE_BUILDERS', 'build_recipe', 'evaluate_model',
    'quantize_and_calibrate', 'save_quantized_checkpoint', 'load_quantized_checkpoint',
    'load_model_checkpoint', 'load_state_dict_strict', 'load_checkpoint_file',
    'allow_mmengine_checkpoint_globals', 'QUANT_DESC_8BIT_PER_TENSOR',
    'QUANT_DESC_8BIT_PER_TENSOR_MAX', 'QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL',
    'QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW', 'QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_TENSOR',
    'QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL', 'print_quant_summary', 'quant_summary',
    'from_pytorch_quantization', 'CHECKPOINT_FORMAT'
]
