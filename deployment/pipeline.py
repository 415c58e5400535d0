"""The deploy pipeline, driven by a deploy config and a model config.

float ONNX -> quantized model (PTQ, or the recipe and amax of a quantized checkpoint) ->
Q/DQ ONNX per placement target (OpenVINO IR from the ``tensorrt`` placement) -> clean-up ->
verification in the target's runtime (ONNX Runtime, OpenVINO) against PyTorch fake-quant and
float, with the TensorRT lint or OpenVINO's per-layer precisions -> TensorRT engine where
TensorRT is installed -> report.
A model is exported as one or several graphs, as its exporter (``deployment.exporters``) says.
Every artifact is written to a temporary name and renamed when complete.
"""
import logging
import os
import os.path as osp
from dataclasses import asdict
from itertools import islice
from typing import Dict, List, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner
from torch import nn
from tqdm import tqdm

from quantization import (build_recipe, load_model_checkpoint, quantize_and_calibrate,
                          save_quantized_checkpoint)
from quantization.bootstrap import DEFAULT_ROUNDS, bootstrap
from quantization.evaluation import FrameResults, frame_results
from quantization.fileio import check_output_dir
from quantization.toggle import enabled_state, restore_enabled_state, set_all_quantizers
from .cpu_int8 import saturation_note
from .exporters import GraphSpec, build_exporter
from .layer_names import parameter_names, weight_layer_names
from .onnx_export import export_onnx
from .openvino_runtime import OpenVINOModel, import_openvino, precision_report, save_ir
from .ort_runner import OnnxRuntimeModel
from .placement import TARGETS, write_target_onnx
from .profiling import interleaved_speedups
from .tensorrt_builder import (TensorRTEngine, TensorRTUnavailable, build_engine, import_tensorrt,
                               polygraphy_command, profile_inputs, trtexec_command)
from .trt_lint import lint_for_tensorrt
from .verify import compare_arrays, file_size, verify_outputs, write_report

logger = logging.getLogger(__name__)

#: graph name -> input name -> array
GraphInputs = Dict[str, Dict[str, np.ndarray]]


def check_input_shapes(inputs: Dict[str, torch.Tensor], expected: Dict[str, list]):
    """Raise naming the input whose shape does not fit ``onnx_config.input_shapes`` (-1: any;
    the exporter's shapes derived from the model where the deploy config gives none)."""
    for name, tensor in inputs.items():
        shape = expected.get(name)
        if shape is None:
            continue
        fits = len(shape) == tensor.dim() and all(e in (-1, d) for e, d in zip(shape, tensor.shape))
        if not fits:
            raise ValueError(f'input {name!r} has shape {list(tensor.shape)}, but '
                             f'onnx_config.input_shapes gives {list(shape)}')


def artifact_name(kind: str, graph: str, suffix: str = 'onnx') -> str:
    """``float.onnx`` for the one graph of a model, ``float_<graph>.onnx`` for a named one."""
    return f'{kind}_{graph}.{suffix}' if graph else f'{kind}.{suffix}'


class DeployPipeline:
    """Runs every stage of the deploy config for one model and checkpoint into ``work_dir``.

    ``device`` runs the PTQ calibration of a float checkpoint (mmdeploy's ``--device``); export
    and verification run on the CPU, where ONNX Runtime takes its inputs.
    """

    def __init__(self, deploy_cfg: Config, model_cfg: Config, checkpoint: str, work_dir: str,
                 device: Union[str, torch.device] = 'cpu'):
        self.device = torch.device(device)
        self.deploy_cfg = deploy_cfg
        self.model_cfg = model_cfg
        self.checkpoint = checkpoint
        self.work_dir = work_dir
        self.onnx_cfg = deploy_cfg.onnx_config
        self.exporter = build_exporter(deploy_cfg)
        self.dataset_meta = None  # the verification dataset's metainfo, for the evaluator
        self.torch_scores: Dict[str, tuple] = {}  # PyTorch's (metric row, frame results)
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
        self.report['checkpoint_kind'] = load_model_checkpoint(model, self.checkpoint)
        return model.eval()

    def dataloader(self, key: str):
        if key not in self.model_cfg:
            raise KeyError(f'model config has no {key!r} for the deploy config to use')
        return Runner.build_dataloader(self.model_cfg[key], seed=0)

    def export(self, graphs: Dict[str, GraphSpec], example: Dict[str, Dict[str, torch.Tensor]],
               kind: str) -> Dict[str, str]:
        """Export every graph as ``<kind>[_<graph>].onnx``; returns their paths by graph."""
        paths = {}
        for graph, spec in graphs.items():
            name = artifact_name(kind, graph)
            paths[graph] = osp.join(self.work_dir, name)
            export_onnx(spec.module, tuple(example[graph][n] for n in spec.input_names),
                        paths[graph], spec.input_names, spec.output_names,
                        self.onnx_cfg.opset_version, spec.dynamic_axes or None)
            self.report['artifacts'][name] = {
                'path': paths[graph],
                'size_bytes': file_size(paths[graph])
            }
            logger.info('wrote %s', paths[graph])
        return paths

    def quantize(self, model: nn.Module) -> nn.Module:
        if self.report['checkpoint_kind'] == 'quantized':
            return model
        settings = self.deploy_cfg.quantization
        recipe = build_recipe(settings.get('recipe', {}), model)
        counts = quantize_and_calibrate(model.to(self.device), recipe,
                                        self.dataloader(settings.calib_dataloader),
                                        settings.calib_batches, settings.calib_method,
                                        **settings.get('calib_kwargs', {}))
        model.cpu()
        self.report['quantization'] = {
            'recipe': recipe.to_dict(),
            'counts': counts,
            'method': settings.calib_method
        }
        path = osp.join(self.work_dir, 'quantized.pth')
        save_quantized_checkpoint(model, path, recipe, meta={'calib_method': settings.calib_method})
        self.report['artifacts']['quantized.pth'] = {'path': path, 'size_bytes': file_size(path)}
        return model.eval()

    def placement_feeds(self, model: nn.Module) -> Dict[str, List[Dict[str, np.ndarray]]]:
        """Graph inputs of the first ``quantization.placement_batches`` (default 0) batches of
        the calibration dataloader, by graph: what the ``onnxruntime`` target chooses its
        ranges before SiLU / GELU on. Empty where the model config has no such dataloader
        (the data-free range, ``deployment.placement.pre_activation_range``)."""
        settings = self.deploy_cfg.quantization
        key = settings.get('calib_dataloader')
        if 'onnxruntime' not in self.deploy_cfg.targets or key not in self.model_cfg:
            return {}
        feeds = {}
        for batch in islice(self.dataloader(key), settings.get('placement_batches', 0)):
            for graph, inputs in self.exporter.graph_inputs(model, batch).items():
                feeds.setdefault(graph, []).append({n: t.numpy() for n, t in inputs.items()})
        return feeds

    def target_onnx(self, raw_path: str, target: str, graph: str,
                    feeds: List[Dict[str, np.ndarray]]) -> str:
        name = artifact_name(f'int8_{target}', graph)
        path = write_target_onnx(raw_path, osp.join(self.work_dir, name), target, feeds)
        self.report['artifacts'][name] = {'path': path, 'size_bytes': file_size(path)}
        return path

    def target_artifact(self, onnx_path: str, target: str, graph: str) -> str:
        """What a target deploys: its Q/DQ ONNX, or for ``openvino`` the IR made from it."""
        if target != 'openvino':
            return onnx_path
        name = artifact_name('int8_openvino', graph, 'xml')
        path = save_ir(onnx_path, osp.join(self.work_dir, name))
        self.report['artifacts'][name] = {'path': path, 'size_bytes': file_size(path)}
        return path

    def runtimes(self, target: str, onnx_paths: Dict[str, str],
                 artifacts: Dict[str, str]) -> Dict[str, dict]:
        """``{runtime: {graph: model with .run}}`` a target is verified in: the target's runtime
        first (ONNX Runtime with its INT8 kernels; OpenVINO on the IR, the layers it does not
        run INT8 in ``openvino.inference_precision``), then the target's ONNX in ONNX Runtime
        as written (``onnxruntime_unfused``: each Q/DQ a float op, the graph's own
        arithmetic)."""
        if target == 'openvino':
            precision = self.deploy_cfg.get('openvino', {}).get('inference_precision', 'f32')
            first = {'openvino': {g: OpenVINOModel(p, precision) for g, p in artifacts.items()}}
        else:
            first = {'onnxruntime': {g: OnnxRuntimeModel(p) for g, p in onnx_paths.items()}}
        return {**first, 'onnxruntime_unfused': {g: OnnxRuntimeModel(p, fuse=False)
                                                 for g, p in onnx_paths.items()}}

    def verify(self, model: nn.Module, graphs: Dict[str, GraphSpec], onnx_paths: Dict[str, str],
               runtimes: Dict[str, dict], batches: List[tuple], target: str) -> dict:
        """The target's runtime vs PyTorch fake-quant and float and vs its ONNX as written, graph
        by graph, on the same inputs; the task metric of every runtime when
        ``verification.metric`` is set; the TensorRT lint (``tensorrt``) or the precision each
        layer ran with (``openvino``)."""
        snapshot = enabled_state(model)

        def torch_runner(graph: str, quantized: bool):
            run_graph = graphs[graph].torch_runner()

            def run(inputs):
                if not quantized:
                    set_all_quantizers(model, False)
                try:
                    return run_graph(inputs)
                finally:
                    restore_enabled_state(model, snapshot)

            return run

        runners = {name: {g: m.run for g, m in models.items()} for name, models in runtimes.items()}
        primary = next(iter(runners.values()))
        verification = {}
        for graph in graphs:
            per_graph = verify_outputs(
                primary[graph], [inputs[graph] for inputs, _ in batches], {
                    'pytorch_fake_quant': torch_runner(graph, True),
                    'pytorch_float': torch_runner(graph, False),
                    'onnx_as_written': runners['onnxruntime_unfused'][graph]
                }, progress=f'verify {target}{" " + graph if graph else ""}')
            for reference, outputs in per_graph.items():
                verification.setdefault(reference, {}).update(outputs)
        result = {'verification': verification}
        if target == 'tensorrt':  # the other placements are not meant for TensorRT
            result['lint'] = [f'{graph + ": " if graph else ""}{issue}' for graph in graphs
                              for issue in lint_for_tensorrt(onnx_paths[graph])]
        if target == 'openvino':
            result.update(self._precision(runtimes['openvino'], onnx_paths))
        if self.deploy_cfg.verification.get('metric'):
            result.update(self._metrics(model, batches, {
                'pytorch_float': {g: torch_runner(g, False) for g in graphs},
                'pytorch_fake_quant': {g: torch_runner(g, True) for g in graphs},
                **runners
            }))
        return result

    def _precision(self, models: Dict[str, OpenVINOModel], onnx_paths: Dict[str, str]) -> dict:
        """Every weight layer's kernel and precision as OpenVINO runs it, by our layer name; a
        quantized layer not running INT8 and a float island between INT8 layers are lint
        findings."""
        layers, lint = [], []
        for graph, path in onnx_paths.items():
            report = precision_report(path, models[graph].runtime_layers(),
                                      self.layer_names[graph])
            layers += [{'graph': graph, **row} for row in report['layers']]
            lint += [f'{graph + ": " if graph else ""}{finding}'
                     for finding in report['lint'] + report['float_islands']]
        return {'precision': layers, 'lint': lint}

    def _metrics(self, model: nn.Module, batches: List[tuple], runners: Dict[str, dict]) -> dict:
        """The task metric of every runner (``{name: {graph: run}}``) on the verification frames,
        with bootstrap intervals of each and of each minus PyTorch fake-quant (paired;
        ``verification.bootstrap_rounds`` draws, 0: none). PyTorch's scores are the same for
        every target: computed for the first, reused for the others."""
        rows, evaluations = [], {}
        for name, graph_runners in runners.items():
            scored = (self.torch_scores.get(name)
                      or self._metric(model, name, graph_runners, batches))
            if name.startswith('pytorch_'):
                self.torch_scores[name] = scored
            row, evaluations[name] = scored
            rows.append(row)
        rounds = self.deploy_cfg.verification.get('bootstrap_rounds', DEFAULT_ROUNDS)
        if not rounds:
            return {'metrics': rows}
        intervals = bootstrap(evaluations, list(rows[0]['values']), 'pytorch_fake_quant', rounds)
        return {'metrics': rows, 'intervals': asdict(intervals)}

    def _metric(self, model: nn.Module, name: str, runners: dict,
                batches: List[tuple]) -> Tuple[dict, List[FrameResults]]:
        evaluator = Evaluator(self.model_cfg.val_evaluator)
        evaluator.dataset_meta = self.dataset_meta
        count = 0
        for inputs, data_batch in tqdm(batches, desc=f'metric {name}', leave=False):
            samples = self.exporter.predict(model, data_batch, inputs, runners)
            evaluator.process(data_samples=samples, data_batch=data_batch)
            count += len(samples)
        frames = frame_results(evaluator, count)
        return {'model': name, 'values': evaluator.evaluate(count)}, frames

    def resolve_shapes(self, model: nn.Module) -> None:
        """The graph input shapes and TensorRT profiles: the deploy config's where it gives them
        (input by input, graph by graph), else what the exporter derives from the model."""
        derive_shapes = getattr(self.exporter, 'input_shapes', None)
        self.input_shapes = dict(derive_shapes(model)) if derive_shapes else {}
        self.input_shapes.update(self.onnx_cfg.get('input_shapes') or {})
        settings = self.deploy_cfg.tensorrt
        configured = settings.get('profiles') or []
        derive_profiles = getattr(self.exporter, 'tensorrt_profiles', None)
        if isinstance(configured, dict) or (not configured and derive_profiles):
            profiles = (dict(derive_profiles(model, settings.get('max_batch_size', 4)))
                        if derive_profiles else {})
            profiles.update(configured or {})
        else:
            profiles = configured  # one list for a single-graph model
        self.profiles = profiles
        self.report['input_shapes'] = self.input_shapes
        self.report['tensorrt_profiles'] = profiles

    def graph_profiles(self, graph: str) -> list:
        """The TensorRT optimization profiles of one graph."""
        profiles = self.profiles
        return profiles.get(graph, []) if isinstance(profiles, dict) else profiles

    def tensorrt_engines(self, onnx_paths: Dict[str, str], float_paths: Dict[str, str],
                         model: nn.Module, batches: List[tuple]) -> dict:
        """One engine per graph where TensorRT is installed, checked at run time when all are
        built; the ``trtexec`` and ``polygraphy`` commands always."""
        settings = self.deploy_cfg.tensorrt
        entry = {'trtexec': [], 'polygraphy': [], 'status': []}
        engines = {}
        for graph, onnx_path in onnx_paths.items():
            graph_profiles = self.graph_profiles(graph)
            name = artifact_name('int8_tensorrt', graph, 'engine')
            engine_path = osp.join(self.work_dir, name)
            entry['trtexec'].append(
                trtexec_command(onnx_path, engine_path, settings.workspace_mb, settings.fp16,
                                graph_profiles))
            entry['polygraphy'].append(polygraphy_command(onnx_path, graph_profiles))
            if settings.build == 'skip':
                entry['status'].append(f'{name}: skipped by the deploy config')
                continue
            try:
                engines[graph] = build_engine(onnx_path, engine_path, settings.workspace_mb,
                                              settings.fp16, graph_profiles)
                entry['status'].append(f'built {engine_path}')
                self.report['artifacts'][name] = {
                    'path': engine_path,
                    'size_bytes': file_size(engine_path)
                }
            except TensorRTUnavailable as err:
                if settings.build == 'require':
                    raise
                entry['status'].append(f'{name}: skipped: {err}')
        if engines and len(engines) == len(onnx_paths):
            entry['checks'] = self.engine_checks(engines, onnx_paths, float_paths, model,
                                                 batches)
        for key in ('trtexec', 'polygraphy', 'status'):
            entry[key] = '\n'.join(entry[key])
        return entry

    def engine_checks(self, engine_paths: Dict[str, str], onnx_paths: Dict[str, str],
                      float_paths: Dict[str, str], model: nn.Module, batches: List[tuple]) -> dict:
        """The built engines at run time: outputs against the ONNX run as written at the first
        profile's minimum, optimum and maximum shapes (standard-normal inputs); each layer's
        precision from the engine inspector; INT8 speed over an FP16 engine of the float ONNX
        (numpy in and out, interleaved rounds, at the optimum shape); the task metric."""
        settings = self.deploy_cfg.tensorrt
        engines = {g: TensorRTEngine(p) for g, p in engine_paths.items()}
        checks = {'shapes': {}, 'layers': {}, 'speedup_over_fp16': {}}
        for graph, engine in engines.items():
            profiles = self.graph_profiles(graph)
            written = OnnxRuntimeModel(onnx_paths[graph], fuse=False)
            checks['shapes'][graph] = {}
            for label, index in (('min', 0), ('opt', 1), ('max', 2)):
                if not profiles:
                    break
                inputs = profile_inputs(profiles[0], index)
                expected, got = written.run(inputs), engine.run(inputs)
                checks['shapes'][graph][label] = {
                    out: compare_arrays(expected[out], got[out]) for out in expected}
            checks['layers'][graph] = engine.layer_precisions()
            fp16_path = osp.join(self.work_dir, artifact_name('fp16_tensorrt', graph, 'engine'))
            build_engine(float_paths[graph], fp16_path, settings.workspace_mb, True, profiles,
                         int8=False)
            fp16 = TensorRTEngine(fp16_path)
            inputs = profile_inputs(profiles[0], 1) if profiles else batches[0][0][graph]
            checks['speedup_over_fp16'][graph] = interleaved_speedups(
                {'fp16': lambda: fp16.run(inputs), 'int8': lambda: engine.run(inputs)},
                'fp16')['int8']
        if self.deploy_cfg.verification.get('metric'):
            row, _ = self._metric(model, 'tensorrt_engine',
                                  {g: e.run for g, e in engines.items()}, batches)
            checks['metrics'] = [row]
        return checks

    def verification_batches(self, model: nn.Module) -> List[tuple]:
        """(graph inputs as numpy, data batch) for the first ``verification.num_batches``."""
        verify_cfg = self.deploy_cfg.verification
        dataloader = self.dataloader(verify_cfg.dataloader)
        self.dataset_meta = getattr(dataloader.dataset, 'metainfo', None)
        batches = []
        for batch in islice(dataloader, verify_cfg.num_batches):
            inputs = self.exporter.graph_inputs(model, batch)
            for graph_inputs in inputs.values():
                check_input_shapes(graph_inputs, self.input_shapes)
            batches.append(({
                graph: {
                    n: t.numpy()
                    for n, t in graph_inputs.items()
                }
                for graph, graph_inputs in inputs.items()
            }, batch))
        if not batches:
            raise ValueError(f'verification dataloader {verify_cfg.dataloader!r} gave no batch')
        return batches

    # ------------------------------------------------------------------ all stages
    def check_targets(self) -> None:
        """Fail before any work on an unknown target or a runtime a target needs and lacks."""
        for target in self.deploy_cfg.targets:
            if target not in TARGETS:
                raise ValueError(f'targets: unknown target {target!r}; choose from '
                                 f'{", ".join(TARGETS)}')
        if 'openvino' in self.deploy_cfg.targets:
            import_openvino()
        if 'tensorrt' in self.deploy_cfg.targets and self.deploy_cfg.tensorrt.build == 'require':
            import_tensorrt()

    def run(self) -> dict:
        self.check_targets()
        check_output_dir(self.work_dir, '--work-dir')
        logger.info('[1/5] building %s from %s', self.report['model'], self.checkpoint)
        model = self.build_model()
        self.resolve_shapes(model)
        snapshot = enabled_state(model)  # a quantized checkpoint's skip list stays as it is
        set_all_quantizers(model, False)
        batches = self.verification_batches(model)
        placement_feeds = self.placement_feeds(model)
        self.report['placement_feeds'] = {g: len(f) for g, f in placement_feeds.items()}
        os.makedirs(self.work_dir, exist_ok=True)  # inputs checked: the first artifact follows
        example = {
            graph: {
                n: torch.from_numpy(a)
                for n, a in inputs.items()
            }
            for graph, inputs in batches[0][0].items()
        }
        logger.info('[2/5] float ONNX')
        float_paths = self.export(self.exporter.graphs(model), example, 'float')
        restore_enabled_state(model, snapshot)
        logger.info('[3/5] quantized model (%s checkpoint)', self.report['checkpoint_kind'])
        model = self.quantize(model)
        graphs = self.exporter.graphs(model)
        raw_paths = self.export(graphs, example, 'qdq_raw')
        self.layer_names = {
            g: weight_layer_names(raw_paths[g], parameter_names(spec.module, model))
            for g, spec in graphs.items()}
        target_paths, artifacts = {}, {}
        if saturation_note():  # every target is verified on this CPU's INT8 kernels
            self.report['cpu_int8_note'] = saturation_note()
            logger.warning('%s', saturation_note())
        for target in self.deploy_cfg.targets:
            logger.info('[4/5] target %s: Q/DQ ONNX, clean-up, lint, verification', target)
            paths = target_paths[target] = {
                g: self.target_onnx(raw_paths[g], target, g, placement_feeds.get(g))
                for g in graphs}
            artifacts[target] = {g: self.target_artifact(p, target, g) for g, p in paths.items()}
            self.report['targets'][target] = self.verify(
                model, graphs, paths, self.runtimes(target, paths, artifacts[target]), batches,
                target)
        package = getattr(self.exporter, 'package', None)
        written = package(model, self.work_dir, target_paths) if package else None
        if written:  # the files a runtime of the model family reads (e.g. Autoware's node)
            self.report['package'] = written
        float_size = sum(file_size(p) for p in float_paths.values())
        self.report['int8_size_ratio'] = {
            target: sum(file_size(p) for p in paths.values()) / float_size
            for target, paths in artifacts.items()
        }
        if 'tensorrt' in self.deploy_cfg.targets:
            logger.info('[5/5] TensorRT engine')
            self.report['tensorrt_engine'] = self.tensorrt_engines(target_paths['tensorrt'],
                                                                   float_paths, model, batches)
        self.report['report_files'] = write_report(self.report, self.work_dir)
        return self.report
