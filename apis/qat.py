"""QAT from a config: QATHook in an MMEngine Runner (optionally distributed), then the test
metrics of the trained INT8 model."""
import copy
import os.path as osp
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.dist import barrier, is_main_process
from mmengine.logging import print_log
from mmengine.runner import Runner

from quantization import save_quantized_checkpoint
from quantization.bootstrap import DEFAULT_ROUNDS, BootstrapResult
from quantization.errors import UserError
from quantization.fileio import check_output_dir
from quantization.resume import resolve_start
from .adapter import ModelAdapter
from .inputs import QuantInputs, load_inputs
from .launcher import distributed_runner_cfg, init_launcher
from .ptq import (RANGE_STEPS, calibrate, calibration_meta, check_methods, check_range_learning,
                  choose_amax, correct_and_learn_ranges, draw_intervals, evaluate)
from .results import metric_keys, metrics_table
from .user_input import check_non_negative, check_positive


@dataclass
class QATResult:
    """The test metrics after training and of the float model it started from, the learning
    rate used, the last checkpoint and the bootstrap intervals (QAT minus float paired on the
    same frames; None when not drawn)."""
    metrics: dict
    work_dir: str
    checkpoint: str
    epochs: int
    lr: float
    start: str  # where training started: the resume rule's message
    table_prefix: str = ''
    float_metrics: dict = field(default_factory=dict)
    intervals: Optional[BootstrapResult] = None
    metric_key: Optional[str] = None
    float_control: bool = False  # trained without quantization

    @property
    def name(self) -> str:
        kind = 'float control' if self.float_control else 'QAT'
        return f'{kind} ({self.epochs} epochs, lr {self.lr:g})'

    def table(self) -> str:
        return metrics_table([('float', self.float_metrics), (self.name, self.metrics)],
                             metric_keys(self.metrics, self.table_prefix), self.intervals,
                             self.metric_key)


def enable_amp(cfg: Config) -> None:
    """mmdet3d's ``--amp``: MMEngine's AmpOptimWrapper with a dynamic loss scale. Fake
    quantization runs in float32 inside autocast and casts back
    (``quantization.tensor_quant.fake_quant``). MMEngine's AMP needs a GPU: refused without."""
    if not torch.cuda.is_available():
        raise UserError('--amp: MMEngine\'s AmpOptimWrapper trains on a GPU only and this '
                        'machine has none; leave --amp out')
    if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        return
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


#: the PTQ model QAT starts from when the flow calibrates it itself, in the work dir
PTQ_START = 'ptq_start.pth'


def calibrate_start(inputs: QuantInputs, adapter: ModelAdapter, checkpoint: str, path: str,
                    calib_batches: int, method: str, calib_split: str, per_layer_amax: int,
                    bias_correction: bool, learn_ranges: int = 0,
                    range_steps: int = RANGE_STEPS) -> None:
    """PTQ of ``inputs.model`` as ``ptq`` does it (``per_layer_amax`` search, learned ranges,
    bias correction), saved to ``path`` for QAT to start from; the ranks wait until it is
    written."""
    seen = calibrate(inputs, calib_batches, method)
    choices = choose_amax(inputs, adapter, per_layer_amax) if per_layer_amax else []
    ranges = correct_and_learn_ranges(inputs, adapter, calib_batches, bias_correction,
                                      learn_ranges, range_steps)
    if is_main_process():
        save_quantized_checkpoint(
            inputs.model, path, inputs.recipe,
            meta=calibration_meta(checkpoint, inputs, seen, calib_batches, method, calib_split,
                                  bias_correction, 0, choices, ranges))
    barrier()


def qat(config: Union[str, Config],
        checkpoint: str,
        adapter: ModelAdapter,
        work_dir: str,
        epochs: int = 2,
        lr: Optional[float] = None,
        resume: bool = False,
        calib_batches: int = 100,
        method: Optional[str] = None,
        skip_layers: Optional[Sequence[str]] = None,
        calib_split: str = 'train',
        cfg_options: Optional[dict] = None,
        device: Optional[str] = None,
        launcher: str = 'none',
        amp: bool = False,
        seed: Optional[int] = None,
        bootstrap_rounds: int = DEFAULT_ROUNDS,
        learn_amax: bool = False,
        per_layer_amax: int = 0,
        bias_correction: Optional[bool] = None,
        float_control: bool = False,
        learn_ranges: int = 0,
        range_steps: int = RANGE_STEPS) -> QATResult:
    """Fine-tune the float model of ``config`` + ``checkpoint`` with QATHook for ``epochs``
    (peak ``lr``, default 10x below the config's) into ``work_dir``; ``resume`` continues from
    its last complete checkpoint. The Runner trains on its own device (CUDA when available), so
    ``device`` may only confirm it. ``seed`` replaces the config's ``randomness.seed``. The float
    model is evaluated first, so QAT minus float gets a paired bootstrap interval.
    ``learn_amax``: the activation ranges are trained (``QATHook(learn_amax=True)``).
    ``skip_layers`` None: the adapter's QAT list (:meth:`ModelAdapter.skip_layers_for`).
    ``per_layer_amax``, ``learn_ranges`` (batches, 0: off; ``range_steps``) and
    ``bias_correction`` (None: the adapter's QAT default): training starts from ``ptq``'s model
    with them, calibrated here and saved to ``work_dir/ptq_start.pth``, instead of QATHook's
    calibration with ``method``.
    ``float_control``: the same training without quantization (no QATHook, no PTQ start), the
    control that tells what QAT recovers from what the extra training alone gives."""
    method = check_methods([method or adapter.method_for('qat')])[0]
    check_positive({'calib_batches': calib_batches, 'epochs': epochs}, 'calib_batches', 'epochs')
    check_non_negative({'bootstrap_rounds': bootstrap_rounds, 'per_layer_amax': per_layer_amax},
                       'bootstrap_rounds', 'per_layer_amax')
    check_range_learning(adapter, learn_ranges, range_steps)
    if bias_correction is None:
        bias_correction = adapter.bias_correction_for('qat')
    if skip_layers is None:
        skip_layers = adapter.skip_layers_for('qat')
    check_output_dir(work_dir, '--output')
    init_launcher(launcher)
    inputs = load_inputs(config, checkpoint, adapter, skip_layers, calib_split,
                         cfg_options=cfg_options, device=device)
    runner_device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if inputs.device.type != runner_device:
        raise UserError(f'--device {inputs.device}: QAT trains in MMEngine\'s Runner, which uses '
                        f'{runner_device} here (hide GPUs with CUDA_VISIBLE_DEVICES= to train '
                        'on the CPU)')
    float_metrics, float_frames = evaluate(inputs)
    qat_cfg = copy.deepcopy(inputs.cfg)
    qat_cfg.work_dir = work_dir
    if seed is not None:
        qat_cfg.randomness = dict(qat_cfg.get('randomness') or {}, seed=seed)
    start = resolve_start(work_dir, resume, checkpoint)
    ptq_start = per_layer_amax or learn_ranges or bias_correction
    if start.load_from is not None and ptq_start and not float_control:
        start.load_from = osp.join(work_dir, PTQ_START)
        calibrate_start(inputs, adapter, checkpoint, start.load_from, calib_batches, method,
                        calib_split, per_layer_amax, bias_correction, learn_ranges, range_steps)
        start.message += f', calibrated into {start.load_from}'
    start.apply(qat_cfg)
    print_log(f'QAT: {start.message}', logger='current')
    qat_cfg.train_cfg.max_epochs = epochs
    # evaluated below as PTQ is, not by the runner
    qat_cfg.val_dataloader = qat_cfg.val_cfg = qat_cfg.val_evaluator = None
    hooks = [h for h in qat_cfg.get('custom_hooks', []) if h.get('type') != 'QATHook']
    if not float_control:
        hooks.append(
            dict(type='QATHook', recipe=inputs.recipe.to_dict(), calib_batches=calib_batches,
                 calib_method=method, learn_amax=learn_amax))
    qat_cfg.custom_hooks = hooks
    lr = lr if lr is not None else qat_cfg.optim_wrapper.optimizer.lr / 10
    if adapter.qat_optimizer is not None:
        train_loader = (inputs.calib_loader if calib_split == 'train' else
                        Runner.build_dataloader(qat_cfg.train_dataloader, seed=0))
        adapter.qat_optimizer(qat_cfg, lr, epochs, len(train_loader))
    else:
        qat_cfg.optim_wrapper.optimizer.lr = lr
    if amp:
        enable_amp(qat_cfg)
    distributed_runner_cfg(qat_cfg, launcher)
    runner = Runner.from_cfg(qat_cfg)
    runner.train()
    inputs.model = runner.model
    metrics, frames = evaluate(inputs)
    result = QATResult(metrics, work_dir, osp.join(work_dir, f'epoch_{epochs}.pth'), epochs, lr,
                       start.message, adapter.table_prefix, float_metrics,
                       metric_key=adapter.metric_key, float_control=float_control)
    result.intervals = draw_intervals({'float': float_frames, result.name: frames},
                                      metric_keys(metrics, adapter.table_prefix), bootstrap_rounds)
    return result
