"""What the deploy pipeline exports from a model: one or several ONNX graphs, their inputs for a
data batch, and how the graphs' outputs become predictions for the task metric.

``WholeModelExporter`` (the default) exports the model's ``'tensor'`` mode as one graph. A model
deployed as several graphs with Python between them (CenterPoint: pillar encoder, scatter,
backbone + neck + head) registers its own exporter in ``DEPLOY_EXPORTERS`` and a deploy config
names it: ``exporter = dict(type='CenterPointSplitExporter')``.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List

import numpy as np
import torch
from mmengine.registry import Registry
from torch import nn

#: Exporter classes by name; ``cls(onnx_config)`` must provide ``graphs``, ``graph_inputs`` and
#: ``predict`` as :class:`WholeModelExporter` does.
DEPLOY_EXPORTERS = Registry('deploy exporter')

#: Runs one graph: numpy inputs by name -> numpy outputs by name.
GraphRunner = Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]]


@dataclass
class GraphSpec:
    """One ONNX graph: the module traced and the names of its inputs and outputs."""
    module: nn.Module
    input_names: List[str]
    output_names: List[str]
    dynamic_axes: Dict[str, Dict[int, str]] = field(default_factory=dict)

    def torch_runner(self) -> GraphRunner:
        """The module as a :data:`GraphRunner` (no grad, numpy in and out)."""

        def run(inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
            with torch.no_grad():
                outputs = self.module(*[torch.from_numpy(inputs[n]) for n in self.input_names])
            outputs = outputs if isinstance(outputs, (list, tuple)) else (outputs, )
            return {n: o.numpy() for n, o in zip(self.output_names, outputs)}

        return run


class TensorModeWrapper(nn.Module):
    """Exports an MMEngine model's ``'tensor'`` mode with up to 4 positional inputs (named
    parameters, because the dynamo exporter maps dynamic axes onto them; ``*args`` fails)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input0, input1=None, input2=None, input3=None):
        inputs = [t for t in (input0, input1, input2, input3) if t is not None]
        return self.model(*inputs, mode='tensor')


@DEPLOY_EXPORTERS.register_module()
class WholeModelExporter:
    """The model's ``'tensor'`` mode as one graph named ``''`` (files ``float.onnx``, ...).

    Graph inputs are the data preprocessor's output for a batch; names, outputs and dynamic axes
    come from ``onnx_config``. For the metric, the first output's rows are the predictions
    (valid when the model's ``'predict'`` output equals its ``'tensor'`` output).
    """

    def __init__(self, onnx_config: dict):
        self.onnx_config = onnx_config

    def graphs(self, model: nn.Module) -> Dict[str, GraphSpec]:
        return {
            '':
            GraphSpec(
                TensorModeWrapper(model), list(self.onnx_config['input_names']),
                list(self.onnx_config['output_names']),
                dict(self.onnx_config.get('dynamic_axes') or {}))
        }

    def graph_inputs(self, model: nn.Module, batch) -> Dict[str, Dict[str, torch.Tensor]]:
        names = list(self.onnx_config['input_names'])
        data = model.data_preprocessor(batch, False)
        inputs = data['inputs'] if isinstance(data, dict) else data
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if len(inputs) != len(names):
            raise ValueError(f'onnx_config.input_names {names} name {len(names)} inputs, '
                             f'the model takes {len(inputs)}')
        return {'': dict(zip(names, inputs))}

    def predict(self, model: nn.Module, batch, inputs: Dict[str, Dict[str, np.ndarray]],
                runners: Dict[str, GraphRunner]) -> list:
        outputs = runners[''](inputs[''])
        return list(torch.from_numpy(np.asarray(outputs[self.onnx_config['output_names'][0]])))


def build_exporter(deploy_cfg) -> WholeModelExporter:
    """The exporter a deploy config names (``exporter.type``), else the whole-model one."""
    settings = dict(deploy_cfg.get('exporter') or {'type': 'WholeModelExporter'})
    name = settings.pop('type')
    exporter_cls = DEPLOY_EXPORTERS.get(name)
    if exporter_cls is None:
        raise KeyError(f'deploy config exporter.type {name!r} is not registered: import the '
                       f'project that registers it (custom_imports); known: '
                       f'{sorted(DEPLOY_EXPORTERS.module_dict)}')
    return exporter_cls(deploy_cfg.onnx_config, **settings)
