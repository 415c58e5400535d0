"""tools/deploy.py from config files on DemoNet: artifacts, Q/DQ counts, verification, errors."""
import json
import os
import os.path as osp
import sys
from collections import Counter

import onnx
import pytest
import torch

from projects.Demo import DemoNet
from tests.int8_kernels import openvino_int8_deconvolution, runtime_cosine
from tools.deploy import main as deploy_main

ROOT = osp.join(osp.dirname(__file__), '..', '..')
DEPLOY_CFG = osp.join(ROOT, 'configs', 'demo', 'deploy_demonet.py')


@pytest.fixture(scope='module')
def small_model_cfg(tmp_path_factory):
    """The demo model config at width 128 (weights dominate the file, as in real models; the
    ~30 kB of names, scales and shapes would dominate a tiny one) and small datasets."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'demo', 'demonet_shapes.py'))
    cfg.model.width = 128
    cfg.train_dataloader.dataset.num_samples = 64
    cfg.val_dataloader.dataset.num_samples = 32
    cfg.val_dataloader.batch_size = 8
    path = str(tmp_path_factory.mktemp('cfg') / 'model_cfg.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def float_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('ckpt') / 'float.pth')
    torch.save({'state_dict': DemoNet(width=128).state_dict(), 'meta': {}}, path)
    return path


@pytest.fixture(scope='module')
def deployed(small_model_cfg, float_checkpoint, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('deploy'))
    assert deploy_main([
        DEPLOY_CFG, small_model_cfg, float_checkpoint, '--work-dir', work_dir, '--cfg-options',
        'quantization.calib_batches=2'
    ]) == 0
    return work_dir


def ops(path):
    return Counter(node.op_type for node in onnx.load(path).graph.node)


def test_artifacts_counts_and_size(deployed):
    names = set(os.listdir(deployed))
    assert {
        'float.onnx', 'quantized.pth', 'int8_tensorrt.onnx', 'int8_onnxruntime.onnx',
        'int8_openvino.onnx', 'int8_openvino.xml', 'int8_openvino.bin', 'deploy_report.json',
        'deploy_report.md'
    } <= names
    assert not [n for n in names if '.tmp' in n]
    assert ops(osp.join(deployed, 'float.onnx'))['QuantizeLinear'] == 0
    trt_ops = ops(osp.join(deployed, 'int8_tensorrt.onnx'))
    # 8 weight layers: weights folded to INT8 initializers (DQ only); inputs of 8 layers and
    # 2 + 2 of QuantAdd / QuantConcat keep Q and DQ.
    assert trt_ops['DequantizeLinear'] == 20 and trt_ops['QuantizeLinear'] == 12
    ort_graph = onnx.load(osp.join(deployed, 'int8_onnxruntime.onnx')).graph
    activation_zero_points = [i for i in ort_graph.initializer if 'u8_zero_point' in i.name]
    assert activation_zero_points and all(i.data_type == onnx.TensorProto.UINT8
                                          for i in activation_zero_points)
    report = json.load(open(osp.join(deployed, 'deploy_report.json')))
    assert report['int8_size_ratio']['tensorrt'] <= 0.27
    # The IR keeps the INT8 weights as INT8 (its .bin counted with the .xml).
    assert report['int8_size_ratio']['openvino'] <= 0.3
    assert report['checkpoint_kind'] == 'float'


def test_verification_against_pytorch(deployed):
    report = json.load(open(osp.join(deployed, 'deploy_report.json')))
    for target in ('tensorrt', 'onnxruntime'):
        result = report['targets'][target]
        fake_quant = result['verification']['pytorch_fake_quant']['logits']
        # Differences come only from values below -amax: -127 in PyTorch, -128 in ONNX (and
        # from int16 saturation on CPUs without VNNI).
        assert fake_quant['cosine'] > runtime_cosine(0.999)
        assert fake_quant['mean_abs'] < 0.05
        metrics = {row['model']: row['values']['shapes/accuracy'] for row in result['metrics']}
        assert abs(metrics['onnxruntime'] - metrics['pytorch_fake_quant']) <= 100 / 32 + 1e-6
        assert abs(metrics['onnxruntime_unfused'] -
                   metrics['pytorch_fake_quant']) <= 100 / 32 + 1e-6
    assert report['targets']['tensorrt']['lint'] == []
    assert 'lint' not in report['targets']['onnxruntime']  # not a TensorRT graph
    assert 'trtexec --onnx=' in report['tensorrt_engine']['trtexec']


def test_openvino_target_runs_int8_as_written(deployed):
    result = json.load(open(osp.join(deployed, 'deploy_report.json')))['targets']['openvino']
    # OpenVINO's INT8 kernels reproduce the placed graph's own arithmetic; against PyTorch
    # fake-quant the placement's finer uint8 grid after ReLU makes a small difference.
    assert result['verification']['onnx_as_written']['logits']['cosine'] > runtime_cosine(0.9999)
    assert result['verification']['pytorch_fake_quant']['logits']['cosine'] > runtime_cosine(
        0.999)
    metrics = {row['model']: row['values']['shapes/accuracy'] for row in result['metrics']}
    assert set(metrics) == {'pytorch_float', 'pytorch_fake_quant', 'openvino',
                            'onnxruntime_unfused'}
    assert abs(metrics['openvino'] - metrics['pytorch_fake_quant']) <= 100 / 32 + 1e-6
    layers = {row['layer']: row for row in result['precision']}
    assert set(layers) == {'stem.0', 'block.0.0', 'block.1', 'down.0', 'up.0', 'fuse.0',
                           'head.0', 'head.3'}
    # An AVX2 CPU has no INT8 deconvolution kernel in OpenVINO: up.0 runs in f32 there.
    in_f32 = [] if openvino_int8_deconvolution() else ['up.0']
    assert all(row['quantized'] and row['int8'] != (name in in_f32)
               for name, row in layers.items())
    # The one float island: the global average pool between the last conv and the head.
    assert result['lint'][len(in_f32):] == [
        '/model/ReduceMean: [float-island] Reduce runs in f32 between INT8 layers '
        '/model/fuse/fuse.0/Conv/WithoutBiases and /model/head/head.0/Gemm/WithoutBiases']
    assert all(f.startswith(f'{name}: [float-layer]') for f, name in zip(result['lint'], in_f32))
    text = open(osp.join(deployed, 'deploy_report.md')).read()
    assert f'Per-layer precision: {8 - len(in_f32)} of 8 quantized layers run INT8' in text
    assert f'OpenVINO precision check: {1 + len(in_f32)} issue(s)' in text


def test_quantized_checkpoint_is_deployed_without_new_calibration(deployed, small_model_cfg,
                                                                  tmp_path):
    work_dir = str(tmp_path / 'again')
    assert deploy_main([
        DEPLOY_CFG, small_model_cfg,
        osp.join(deployed, 'quantized.pth'), '--work-dir', work_dir, '--cfg-options',
        'targets=[tensorrt]'
    ]) == 0
    report = json.load(open(osp.join(work_dir, 'deploy_report.json')))
    assert report['checkpoint_kind'] == 'quantized' and 'quantization' not in report
    first = onnx.load(osp.join(deployed, 'int8_tensorrt.onnx'))
    second = onnx.load(osp.join(work_dir, 'int8_tensorrt.onnx'))
    int8 = [i for i in first.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    int8_again = [i for i in second.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert sorted(i.raw_data for i in int8) == sorted(i.raw_data for i in int8_again)


def run_failing(args, capsys):
    assert deploy_main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ')
    return lines[0]


def test_bad_input_gives_one_line_and_no_artifact(small_model_cfg, float_checkpoint, tmp_path,
                                                  capsys):
    work_dir = str(tmp_path / 'bad')
    line = run_failing(
        [DEPLOY_CFG, small_model_cfg,
         str(tmp_path / 'nope.pth'), '--work-dir', work_dir], capsys)
    assert 'checkpoint' in line and 'nope.pth does not exist' in line
    narrow = str(tmp_path / 'narrow.pth')
    torch.save({'state_dict': DemoNet(width=16).state_dict()}, narrow)
    line = run_failing([DEPLOY_CFG, small_model_cfg, narrow, '--work-dir', work_dir], capsys)
    assert 'narrow.pth does not fit DemoNet: shapes differ' in line
    line = run_failing([
        DEPLOY_CFG, small_model_cfg, float_checkpoint, '--work-dir', work_dir, '--cfg-options',
        'onnx_config.input_shapes.inputs=[-1,3,64,64]'
    ], capsys)
    assert "input 'inputs' has shape [8, 3, 32, 32], but onnx_config.input_shapes gives" in line
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        line = run_failing([
            DEPLOY_CFG, small_model_cfg, float_checkpoint, '--work-dir', work_dir, '--engine',
            'require', '--cfg-options', 'targets=[tensorrt]', 'quantization.calib_batches=1',
            'verification.num_batches=1'
        ], capsys)
        assert 'TensorRT is not installed' in line
    line = run_failing([
        DEPLOY_CFG, small_model_cfg, float_checkpoint, '--work-dir', work_dir, '--cfg-options',
        'targets=[tensorrt,tflite]'
    ], capsys)
    assert "targets: unknown target 'tflite'; choose from tensorrt, onnxruntime, openvino" in line
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, 'openvino', None)  # as if not installed
        line = run_failing([DEPLOY_CFG, small_model_cfg, float_checkpoint, '--work-dir',
                            work_dir], capsys)
    assert 'OpenVINO is not installed: pip install openvino' in line
    leftovers = os.listdir(work_dir) if osp.isdir(work_dir) else []
    assert 'int8_tensorrt.engine' not in leftovers and not [n for n in leftovers if '.tmp' in n]
