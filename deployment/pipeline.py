"""The deploy pipeline, driven by a deploy config and a model config.

float ONNX -> quantized model (PTQ, or the recipe and amax of a quantized checkpoint) ->
Q/DQ ONNX per placement target -> clean-up and TensorRT lint -> ONNX Runtime verification
against PyTorch fake-quant and float -> TensorRT engine where TensorRT is installed -> report.
Every artifact is written to a temporary name and renamed when complete.
"""
import logging
import os
import os.path as osp
from itertools import islice
from typing import Dict, List

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner
from torch import nn

from quantization import (QuantRecipe, load_checkpoint_file, load_state_dict_strict,
                          quantize_and_calibrate, save_quantized_checkpoint)
from quantization.toggle import enabled_state, restore_enabled_state, set_all_quantizers
from .graph_passes import clean_up_onnx
from .onnx_export import export_onnx
from .ort_runner import OnnxRuntimeModel
from .placement import apply_placement
from .tensorrt_builder import (TensorRTUnavailable, build_engine, import_tensorrt, trtexec_command)
from .trt_lint import lint_for_tensorrt
from .verify import file_size, verify_outputs, write_report

logger = logging.getLogger(__name__)


class TensorModeWrapper(nn.Module):
    """Exports an MMEngine model's ``'tensor'`` mode with up to 4 positional inputs (named
    parameters, because the dynamo exporter maps dynamic axes onto them; ``*args`` fails)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input0, input1=None, input2=None, input3=None):
        inputs = [t for t in (input0, input1, input2, input3) if t is not None]
        return self.model(*inputs, mode='tensor')


def _as_tuple(outputs) -> tuple:
    return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs, )


def model_inputs(model: nn.Module, batch, input_names: List[str]) -> Dict[str, torch.Tensor]:
    """The exported model's inputs of a dataloader batch, via the model's data preprocessor."""
    data = model.data_preprocessor(batch, False)
    inputs = data['inputs'] if isinstance(data, dict) else data
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    if len(inputs) != len(input_names):
        raise ValueError(f'onnx_config.input_names {input_names} name {len(input_names)} inputs, '
                         f'the model takes {len(inputs)}')
    return dict(zip(input_names, inputs))


def check_input_shapes(inputs: Dict[str, torch.Tensor], expected: Dict[str, list]):
    """Raise naming the input whose shape does not fit ``onnx_config.input_shapes`` (-1: any)."""
    for name, tensor in inputs.items():
        shape = expected.get(name)
        if shape is None:
            continue
        fits = len(shape) == tensor.dim() and all(e in (-1, d) for e, d in zip(shape, tensor.shape))
        if not fits:
            raise ValueError(f'input {name!r} has shape {list(tensor.shape)}, but '
                             f'onnx_config.input_shapes gives {list(shape)}')


class DeployPipeline:
    """Runs every stage of the deploy config for one model and checkpoint into ``work_dir``."""

    def __init__(self, deploy_cfg: Config, model_cfg: Config, checkpoint: str, work_dir: str):
        self.deploy_cfg = deploy_cfg
        self.model_cfg = model_cfg
        self.checkpoint = checkpoint
        self.work_dir = work_dir
        self.onnx_cfg = deploy_cfg.onnx_config
        self.report: dict = {
            'model': model_cfg.model.get('type', ''),
            'checkpoint': checkpoint,
            'artifacts': {},
            'targets': {}
        }

    # ------------------------------------------------------------------ stages
    def build_model(self) -> nn.Module:
        if 'model' not in self.model_cfg:
            raise KeyError(f'model config {self.model_cfg.filename} has no "model" key')
        if self.model_cfg.get('default_scope'):
            init_default_scope(self.model_cfg.default_scope)
        model = MODELS.build(self.model_cfg.model)
        checkpoint = load_checkpoint_file(self.checkpoint)
        recipe = checkpoint.get('meta', {}).get('quantization')
        if recipe is not None:
            QuantRecipe.from_dict(recipe).apply(model)
        load_state_dict_strict(model, checkpoint.get('state_dict', checkpoint), self.checkpoint)
        self.report['checkpoint_kind'] = 'quantized' if recipe is not None else 'float'
        return model.eval()

    def dataloader(self, key: str):
        if key not in self.model_cfg:
            raise KeyError(f'model config has no {key!r} for the deploy config to use')
        return Runner.build_dataloader(self.model_cfg[key], seed=0)

    def export(self, model: nn.Module, example: Dict[str, torch.Tensor], name: str) -> str:
        path = osp.join(self.work_dir, name)
        export_onnx(
            TensorModeWrapper(model), tuple(example.values()), path, self.onnx_cfg.input_names,
            self.onnx_cfg.output_names, self.onnx_cfg.opset_version,
            self.onnx_cfg.get('dynamic_axes') or None)
        self.report['artifacts'][name] = {'path': path, 'size_bytes': file_size(path)}
        logger.info('wrote %s', path)
        return path

    def quantize(self, model: nn.Module) -> nn.Module:
        if self.report['checkpoint_kind'] == 'quantized':
            return model
        settings = self.deploy_cfg.quantization
        recipe = QuantRecipe(**settings.get('recipe', {}))
        counts = quantize_and_calibrate(model, recipe, self.dataloader(settings.calib_dataloader),
                                        settings.calib_batches, settings.calib_method,
                                        **settings.get('calib_kwargs', {}))
        self.report['quantization'] = {
            'recipe': recipe.to_dict(),
            'counts': counts,
            'method': settings.calib_method
        }
        path = osp.join(self.work_dir, 'quantized.pth')
        save_quantized_checkpoint(model, path, recipe, meta={'calib_method': settings.calib_method})
        self.report['artifacts']['quantized.pth'] = {'path': path, 'size_bytes': file_size(path)}
        return model.eval()

    def target_onnx(self, raw_path: str, target: str) -> str:
        path = osp.join(self.work_dir, f'int8_{target}.onnx')
        clean_up_onnx(raw_path, path)
        if target != 'tensorrt':
            graph = gs.import_onnx(onnx.load(path))
            apply_placement(graph, target)
            placed = gs.export_onnx(graph)
            del placed.opset_import[:]
            placed.opset_import.extend(onnx.load(path).opset_import)
            onnx.checker.check_model(placed)
            onnx.save(placed, f'{path}.tmp.onnx')
            os.replace(f'{path}.tmp.onnx', path)
        self.report['artifacts'][osp.basename(path)] = {'path': path, 'size_bytes': file_size(path)}
        return path

    def verify(self, model: nn.Module, onnx_path: str, target: str, batches: list) -> dict:
        session = OnnxRuntimeModel(onnx_path)

        snapshot = enabled_state(model)

        def run_torch(inputs, quantized: bool):
            if not quantized:
                set_all_quantizers(model, False)
            with torch.no_grad():
                outputs = _as_tuple(
                    model(*[torch.from_numpy(v) for v in inputs.values()], mode='tensor'))
            restore_enabled_state(model, snapshot)
            return {n: o.numpy() for n, o in zip(self.onnx_cfg.output_names, outputs)}

        numpy_batches = [{k: v.numpy() for k, v in b.items()} for b, _ in batches]
        result = {
            'verification':
            verify_outputs(
                session.run, numpy_batches, {
                    'pytorch_fake_quant': lambda i: run_torch(i, True),
                    'pytorch_float': lambda i: run_torch(i, False)
                }),
            'lint': [str(issue) for issue in lint_for_tensorrt(onnx_path)]
        }
        if self.deploy_cfg.verification.get('metric'):
            result['metrics'] = [
                self._metric('pytorch_float', lambda i: run_torch(i, False), batches),
                self._metric('pytorch_fake_quant', lambda i: run_torch(i, True), batches),
                self._metric('onnxruntime', session.run, batches)
            ]
        return result

    def _metric(self, name: str, run, batches: list) -> dict:
        evaluator = Evaluator(self.model_cfg.val_evaluator)
        count = 0
        for inputs, data_batch in batches:
            outputs = run({k: v.numpy() for k, v in inputs.items()})
            first = torch.from_numpy(np.asarray(outputs[self.onnx_cfg.output_names[0]]))
            evaluator.process(data_samples=list(first), data_batch=data_batch)
            count += len(first)
        return {'model': name, 'values': evaluator.evaluate(count)}

    def tensorrt_engine(self, onnx_path: str, batches: list) -> dict:
        settings = self.deploy_cfg.tensorrt
        engine_path = osp.join(self.work_dir, 'int8_tensorrt.engine')
        entry = {
            'trtexec':
            trtexec_command(onnx_path, engine_path, settings.workspace_mb, settings.fp16,
                            settings.get('profiles'))
        }
        if settings.build == 'skip':
            entry['status'] = 'skipped by the deploy config'
            return entry
        try:
            build_engine(onnx_path, engine_path, settings.workspace_mb, settings.fp16,
                         settings.get('profiles'))
            entry['status'] = f'built {engine_path}'
            self.report['artifacts']['int8_tensorrt.engine'] = {
                'path': engine_path,
                'size_bytes': file_size(engine_path)
            }
        except TensorRTUnavailable as err:
            if settings.build == 'require':
                raise
            entry['status'] = f'skipped: {err}'
        return entry

    # ------------------------------------------------------------------ all stages
    def run(self) -> dict:
        if 'tensorrt' in self.deploy_cfg.targets and self.deploy_cfg.tensorrt.build == 'require':
            import_tensorrt()  # fail before any work when the engine cannot be built
        os.makedirs(self.work_dir, exist_ok=True)
        logger.info('[1/5] building %s from %s', self.report['model'], self.checkpoint)
        model = self.build_model()
        verify_cfg = self.deploy_cfg.verification
        batches = []
        for batch in islice(self.dataloader(verify_cfg.dataloader), verify_cfg.num_batches):
            inputs = model_inputs(model, batch, self.onnx_cfg.input_names)
            check_input_shapes(inputs, self.onnx_cfg.input_shapes)
            batches.append((inputs, batch))
        if not batches:
            raise ValueError(f'verification dataloader {verify_cfg.dataloader!r} gave no batch')
        example = batches[0][0]
        logger.info('[2/5] float ONNX')
        snapshot = enabled_state(model)  # a quantized checkpoint's skip list stays as it is
        set_all_quantizers(model, False)
        self.export(model, example, 'float.onnx')
        restore_enabled_state(model, snapshot)
        logger.info('[3/5] quantized model (%s checkpoint)', self.report['checkpoint_kind'])
        model = self.quantize(model)
        raw_path = self.export(model, example, 'qdq_raw.onnx')
        for target in self.deploy_cfg.targets:
            logger.info('[4/5] target %s: Q/DQ ONNX, clean-up, lint, verification', target)
            path = self.target_onnx(raw_path, target)
            self.report['targets'][target] = self.verify(model, path, target, batches)
        float_size = self.report['artifacts']['float.onnx']['size_bytes']
        self.report['int8_size_ratio'] = {
            target: self.report['artifacts'][f'int8_{target}.onnx']['size_bytes'] / float_size
            for target in self.deploy_cfg.targets
        }
        if 'tensorrt' in self.deploy_cfg.targets:
            logger.info('[5/5] TensorRT engine')
            self.report['tensorrt_engine'] = self.tensorrt_engine(
                osp.join(self.work_dir, 'int8_tensorrt.onnx'), batches)
        self.report['report_files'] = write_report(self.report, self.work_dir)
        return self.report
