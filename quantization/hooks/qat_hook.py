"""QATHook: quantization-aware training in any MMEngine training config.

``custom_hooks = [dict(type='QATHook', calib_batches=300, calib_method='mse')]``

Order of events in ``Runner.train``:
0. ``before_run``: MMEngine's plain ``CheckpointHook`` gets the atomic file backend (checkpoints
   written to a temporary name and renamed); without an ``EpochSeedHook`` this hook seeds every
   epoch itself, so a resumed run draws the augmentations of an uninterrupted one.
1. ``after_load_checkpoint`` (during ``load_from`` / ``--resume``): a quantized checkpoint gets its
   quantized structure rebuilt (from the recipe in its metadata) before its weights and amax load.
2. ``before_train``: QAT without trained weights is refused (nothing loaded through
   ``load_from`` / ``resume``, no calibrated quantizers), unless ``require_trained_weights=False``.
   A still-float model (fresh start, or a float ``load_from``) is quantized with
   the hook's recipe (replace, fold BN, fuse ReLU, skip layers) and calibrated on
   ``calib_batches`` training batches. A model whose quantizers all hold amax is not calibrated.
3. Every epoch: BN statistics freeze from ``freeze_bn_epoch`` (when BN is not folded); quantizer
   ranges follow the data (EMA for activations, current max for weights) until
   ``freeze_quantizer_epoch``, then stay fixed. With ``freeze_quantizer_epoch=None`` the ranges
   are fixed after calibration, as in CUDA-CenterPoint. With ``learn_amax=True`` the activation
   ranges are trained instead (LSQ gradient, their own param group without weight decay); the
   weight ranges still follow ``freeze_quantizer_epoch``.
4. ``before_save_checkpoint``: the recipe goes to ``meta['quantization']`` and the calibration
   actually done (batches seen, batches asked for, method) to ``meta['calibration']``; amax
   buffers are in the state_dict, so ``--resume`` continues exactly.

Parameter objects survive every pass, so the optimizer the runner built on the float model
keeps training the same tensors. A DDP wrapper is rebuilt around the changed module.
"""
from typing import Optional

from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import nn

from ..bias_correction import add_saved_biases
from ..calibration import CalibrationManager
from ..checkpoint import has_quantizers, is_quantized_state_dict
from ..recipe import QuantRecipe, build_recipe
from ..toggle import learn_activation_amax, named_quantizers
from .checkpoint_hook import ATOMIC_BACKEND_ARGS
from .epoch_seed_hook import EpochSeedHook, seed_epoch, warn_persistent_workers


@HOOKS.register_module()
class QATHook(Hook):
    """Insert quantizers, calibrate, then train with fake quantization.

    Args:
        recipe (dict, optional): :class:`QuantRecipe` fields (include/exclude patterns,
            descriptors, ``fold_bn``, ``bn_pairs``, ``fuse_relu``, ``skip_layers``), or a
            model family's recipe: ``dict(type='CenterPointRecipe', skip_layers=[...])`` (a
            name in ``RECIPE_BUILDERS``, built from the model when training starts).
        calib_batches (int): Training batches for the initial calibration. Defaults to 100.
        calib_method (str): amax method for histogram quantizers. Defaults to 'mse'.
        calib_kwargs (dict, optional): Passed to the amax reduction (e.g. ``percentile``).
        freeze_bn_epoch (int, optional): From this epoch on, BN layers run in eval mode (only
            matters with ``fold_bn=False``). Defaults to None (never).
        freeze_quantizer_epoch (int, optional): Ranges track the data until this epoch.
            Defaults to None (fixed after calibration).
        amax_momentum (float): EMA factor of activation range tracking. Defaults to 0.01.
        require_trained_weights (bool): Refuse to start when no checkpoint was loaded (QAT from
            random weights). False allows a model given with trained weights already in it.
            Defaults to True.
        learn_amax (bool): Train the activation quantizers' amax from their calibrated values
            (pytorch-quantization's ``learn_amax``, LSQ's gradient); they are saved in
            checkpoints and exported like fixed amax. Defaults to False.
        amax_lr (float, optional): Learning rate of the learned amax (a param group with
            ``weight_decay=0``, which LR schedulers built before it leave alone). Defaults to
            the optimizer's own ``lr``.
    """

    priority = 'HIGH'

    def __init__(self,
                 recipe: Optional[dict] = None,
                 calib_batches: int = 100,
                 calib_method: str = 'mse',
                 calib_kwargs: Optional[dict] = None,
                 freeze_bn_epoch: Optional[int] = None,
                 freeze_quantizer_epoch: Optional[int] = None,
                 amax_momentum: float = 0.01,
                 require_trained_weights: bool = True,
                 learn_amax: bool = False,
                 amax_lr: Optional[float] = None):
        if not isinstance(calib_batches, int) or calib_batches <= 0:
            raise ValueError(
                f'QATHook: calib_batches must be a positive int, got {calib_batches!r}')
        if not 0 < amax_momentum <= 1:
            raise ValueError(f'QATHook: amax_momentum must be in (0, 1], got {amax_momentum}')
        if amax_lr is not None and not amax_lr > 0:
            raise ValueError(f'QATHook: amax_lr must be > 0, got {amax_lr!r}')
        self.recipe_cfg = dict(recipe or {})
        self.recipe = None if 'type' in self.recipe_cfg else QuantRecipe.from_dict(self.recipe_cfg)
        self.calib_batches = calib_batches
        self.calib_method = calib_method
        self.calib_kwargs = dict(calib_kwargs or {})
        self.freeze_bn_epoch = freeze_bn_epoch
        self.freeze_quantizer_epoch = freeze_quantizer_epoch
        self.amax_momentum = amax_momentum
        self.require_trained_weights = require_trained_weights
        self.learn_amax = learn_amax
        self.amax_lr = amax_lr
        self._bn_frozen = False
        self._loaded_checkpoint = False
        self._seeds_epochs = False
        self.calibration_record: Optional[dict] = None

    @staticmethod
    def _model(runner) -> nn.Module:
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _quantize(self, runner, recipe: QuantRecipe, state_dict: Optional[dict] = None):
        """Apply ``recipe``; the biases bias correction added to ``state_dict`` (a checkpoint
        being loaded) are created too, so they load and train."""
        model = self._model(runner)
        counts = recipe.apply(model)
        if state_dict is not None:
            counts['biases_added'] = add_saved_biases(model, state_dict)
        self.recipe = recipe
        runner.logger.info(f'QATHook: quantized the model: {counts}')
        self._add_new_params_to_optimizer(runner, model)
        self._rewrap(runner, model)

    @staticmethod
    def _rewrap(runner, model: nn.Module):
        """A DDP wrapper rebuilt around the changed module (it only syncs the Parameters it saw
        when built)."""
        if is_model_wrapper(runner.model):
            runner.model = runner.wrap_model(runner.cfg.get('model_wrapper_cfg'), model)
            runner.logger.info('QATHook: rebuilt the model wrapper around the quantized model')

    def _learn_ranges(self, runner, state_dict: Optional[dict] = None):
        """Activation amax become trained Parameters in their own optimizer param group."""
        model = self._model(runner)
        learned = learn_activation_amax(model, state_dict)
        optimizer = self._optimizer(runner)
        if optimizer is not None and learned:
            lr = self.amax_lr if self.amax_lr is not None else optimizer.defaults['lr']
            optimizer.add_param_group({'params': learned, 'lr': lr, 'weight_decay': 0.0})
        runner.logger.info(f'QATHook: {len(learned)} activation ranges are learned (lr '
                           f'{self.amax_lr or "of the optimizer"})')
        self._rewrap(runner, model)

    def _learns_ranges(self, runner) -> bool:
        return any(q.learns_amax for _, q in named_quantizers(self._model(runner)))

    @staticmethod
    def _optimizer(runner):
        """The runner's torch optimizer, None before one is built."""
        return getattr(getattr(runner, 'optim_wrapper', None), 'optimizer', None)

    def _add_new_params_to_optimizer(self, runner, model: nn.Module):
        """Parameters created by a pass (a non-affine BN's folded bias, a corrected bias) join
        the optimizer."""
        optimizer = self._optimizer(runner)
        if optimizer is None:
            return
        known = {id(p) for group in optimizer.param_groups for p in group['params']}
        new_params = [p for p in model.parameters() if id(p) not in known]
        if new_params:
            optimizer.add_param_group({'params': new_params})
            runner.logger.warning(f'QATHook: {len(new_params)} parameters created by BN folding '
                                  'or bias correction were added to the optimizer as a new '
                                  'param group')

    def _hook_recipe(self, runner) -> QuantRecipe:
        return self.recipe or build_recipe(self.recipe_cfg, self._model(runner))

    def before_run(self, runner) -> None:
        for hook in runner.hooks:
            if (type(hook) is CheckpointHook and hook.backend_args is None
                    and hook.file_client_args is None):
                hook.backend_args = dict(ATOMIC_BACKEND_ARGS)
                runner.logger.info('QATHook: CheckpointHook writes checkpoints atomically '
                                   '(temporary name, renamed when complete)')
        self._seeds_epochs = not any(isinstance(hook, EpochSeedHook) for hook in runner.hooks)
        if self._seeds_epochs:
            warn_persistent_workers(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded_checkpoint = True
        self.calibration_record = checkpoint.get('meta', {}).get('calibration',
                                                                 self.calibration_record)
        state_dict = checkpoint.get('state_dict', checkpoint)
        if not is_quantized_state_dict(state_dict) or has_quantizers(self._model(runner)):
            return
        recipe_dict = checkpoint.get('meta', {}).get('quantization')
        if recipe_dict is None:
            runner.logger.warning('QATHook: the checkpoint holds quantizer state but no recipe in '
                                  "meta['quantization']; rebuilding with the hook's recipe")
        self._quantize(
            runner,
            QuantRecipe.from_dict(recipe_dict) if recipe_dict else self._hook_recipe(runner),
            state_dict)
        if self.learn_amax:  # before --resume loads the optimizer state that holds their group
            self._learn_ranges(runner, state_dict)

    def _check_trained_weights(self, runner):
        model = self._model(runner)
        calibrated = has_quantizers(model) and all(q.has_amax
                                                   for _, q in named_quantizers(model)
                                                   if q.is_enabled)
        if self.require_trained_weights and not (self._loaded_checkpoint or calibrated):
            raise ValueError(
                'QATHook: no trained weights to fine-tune: nothing was loaded (load_from='
                f'{runner.cfg.get("load_from")!r}, resume={runner.cfg.get("resume")!r}, work dir '
                f'{runner.work_dir}); pass --load-from FLOAT.pth (tools/train.py) or set '
                'load_from in the config; QATHook(require_trained_weights=False) trains from the '
                "model's initial weights")

    def before_train(self, runner) -> None:
        self._check_trained_weights(runner)
        if not has_quantizers(self._model(runner)):
            self._quantize(runner, self._hook_recipe(runner))
        model = self._model(runner)
        uncalibrated = [
            name for name, q in named_quantizers(model) if q.is_enabled and not q.has_amax
        ]
        if uncalibrated:
            self._calibrate(runner, model, len(uncalibrated))
        else:
            runner.logger.info('QATHook: every quantizer holds amax from the checkpoint; '
                               'no calibration')
        if self.learn_amax and not self._learns_ranges(runner):
            self._learn_ranges(runner)

    def _calibrate(self, runner, model: nn.Module, uncalibrated: int):
        runner.logger.info(f'QATHook: calibrating {uncalibrated} quantizers on '
                           f'{self.calib_batches} training batches ({self.calib_method})')
        seen = CalibrationManager(model).calibrate(runner.train_dataloader, self.calib_batches,
                                                   self.calib_method, **self.calib_kwargs)
        self.calibration_record = dict(
            batches=seen, requested=self.calib_batches, method=self.calib_method)

    def before_train_epoch(self, runner) -> None:
        if self._seeds_epochs:
            seed_epoch(runner)
        epoch = runner.epoch
        self._bn_frozen = self.freeze_bn_epoch is not None and epoch >= self.freeze_bn_epoch
        tracking = self.freeze_quantizer_epoch is not None and epoch < self.freeze_quantizer_epoch
        for _, quantizer in named_quantizers(self._model(runner)):
            quantizer.track_ranges(self.amax_momentum if tracking else None)
        if self.freeze_quantizer_epoch is not None and epoch == self.freeze_quantizer_epoch:
            runner.logger.info(f'QATHook: quantizer ranges frozen from epoch {epoch}')
        if self._bn_frozen and epoch == self.freeze_bn_epoch:
            runner.logger.info(f'QATHook: BatchNorm statistics frozen from epoch {epoch}')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self._bn_frozen:
            return
        for module in self._model(runner).modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if has_quantizers(self._model(runner)):
            meta = checkpoint.setdefault('meta', {})
            meta['quantization'] = self.recipe.to_dict()
            if self.calibration_record is not None:
                meta['calibration'] = dict(self.calibration_record)
