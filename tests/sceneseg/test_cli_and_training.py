"""SceneSeg through the shared CLI, tools/train.py (float and QAT config) and tools/deploy.py."""
import csv
import json
import os
import os.path as osp

import onnx
import pytest

import torch

from projects.SceneSeg.quantization.adapter import SCENESEG
from quantization import load_quantized_checkpoint, named_quantizers
from tests.int8_kernels import f32_deconvolution_finding, openvino_runs_int8
from tools.quantization_cli import main as cli_main
from tools.deploy import main as deploy_main
from tools.sceneseg_benchmark import main as benchmark_main
from tools.train import main as train_main

ROOT = osp.join(osp.dirname(__file__), '..', '..')


def run(argv):
    return cli_main(argv, SCENESEG)


def test_float_training_then_qat_config_resumes(tiny_roads):
    work_dir = str(tiny_roads['folder'] / 'float')
    train_main([
        tiny_roads['config'], '--work-dir', work_dir, '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1'
    ])
    float_checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(float_checkpoint)
    qat_config = osp.join(ROOT, 'configs', 'sceneseg', 'sceneseg_synthetic_small_qat.py')
    qat_dir = str(tiny_roads['folder'] / 'qat')
    data = [
        f'{key}.dataset.data_root={tiny_roads["folder"] / "data"}'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    small = ['model.context_grid=(2,4)'] + [
        f'{key}.dataset.image_size=(64,128)'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    train_main([
        qat_config, '--work-dir', qat_dir, '--load-from', float_checkpoint, '--cfg-options',
        'train_cfg.max_epochs=1', 'custom_hooks.0.calib_batches=1', *data, *small
    ])
    saved = torch.load(osp.join(qat_dir, 'epoch_1.pth'), weights_only=True)
    assert any(k.endswith('SceneContext.add.input_quantizer.amax') for k in saved['state_dict'])
    assert any(
        k.startswith('SceneNeck.upsample_layer_0.weight_quantizer') for k in saved['state_dict'])


def test_ptq_and_sensitivity(tiny_roads, capsys):
    output = str(tiny_roads['folder'] / 'ptq.pth')
    assert run([
        'ptq', '--config', tiny_roads['config'], '--checkpoint', tiny_roads['checkpoint'],
        '--calib-batches', '1', '--method', 'max', '--output', output, '--learn-ranges', '1',
        '--range-steps', '3'
    ]) == 0
    printed = capsys.readouterr().out
    assert '| PTQ (max) |' in printed and 'learned ranges: distance to float' in printed
    from projects.SceneSeg import SceneSegModel
    fresh = SceneSegModel(width_mult=0.25, decoder_scale=16, context_grid=(2, 4))
    load_quantized_checkpoint(fresh, output)
    quantizers = dict(named_quantizers(fresh))
    assert all(q.has_amax for q in quantizers.values() if q.is_enabled)
    skipped = {name for name, q in quantizers.items() if not q.is_enabled}
    assert skipped == {
        f'SceneSegHead.decode_layer_10.{kind}_quantizer'
        for kind in ('input', 'weight')
    }
    # every quantizer is symmetric (zero-point 0) and the ConvTranspose weights are quantized
    assert all(not q.zero_point.any() for q in quantizers.values())
    assert 'SceneSegHead.upsample_layer_4.weight_quantizer' in quantizers
    report = str(tiny_roads['folder'] / 'sensitivity.csv')
    assert run([
        'sensitivity', '--config', tiny_roads['config'], '--checkpoint', tiny_roads['checkpoint'],
        '--calib-batches', '1', '--output', report, '--layers', 'SceneSegHead.decode_layer_1*'
    ]) == 0
    assert [r['layer'] for r in csv.DictReader(open(report))] == ['SceneSegHead.decode_layer_10']


def test_qat_defaults_to_every_layer_int8_from_the_bias_corrected_ptq(tiny_roads):
    # the adapter's QAT defaults are not its PTQ defaults
    assert SCENESEG.skip_layers_for('ptq') == SCENESEG.default_skip_layers != ()
    assert (SCENESEG.method_for('ptq'), SCENESEG.method_for('qat')) == ('entropy', 'mse')
    assert SCENESEG.skip_layers_for('qat') == () and SCENESEG.bias_correction_for('qat')
    work_dir = str(tiny_roads['folder'] / 'qat_defaults')
    assert run([
        'qat', '--config', tiny_roads['config'], '--checkpoint', tiny_roads['checkpoint'],
        '--calib-batches', '1', '--epochs', '1', '--bootstrap-rounds', '0', '--output', work_dir
    ]) == 0
    start = torch.load(osp.join(work_dir, 'ptq_start.pth'), weights_only=True)
    assert start['meta']['calibration']['bias_correction']
    assert start['meta']['calibration']['method'] == 'mse'
    assert start['meta']['quantization']['skip_layers'] == []
    float_state = torch.load(tiny_roads['checkpoint'], weights_only=True)['state_dict']
    classifier = 'SceneSegHead.decode_layer_10.bias'
    assert not torch.equal(start['state_dict'][classifier], float_state[classifier])
    from projects.SceneSeg import SceneSegModel
    trained = SceneSegModel(width_mult=0.25, decoder_scale=16, context_grid=(2, 4))
    load_quantized_checkpoint(trained, osp.join(work_dir, 'epoch_1.pth'))
    quantizers = dict(named_quantizers(trained))
    assert all(q.is_enabled for q in quantizers.values())
    assert 'SceneSegHead.decode_layer_10.input_quantizer' in quantizers
    # the float control trains the same schedule without quantizers
    control_dir = str(tiny_roads['folder'] / 'float_control')
    assert run([
        'qat', '--config', tiny_roads['config'], '--checkpoint', tiny_roads['checkpoint'],
        '--calib-batches', '1', '--epochs', '1', '--bootstrap-rounds', '0', '--output',
        control_dir, '--float-control'
    ]) == 0
    control = torch.load(osp.join(control_dir, 'epoch_1.pth'), weights_only=True)
    assert not osp.exists(osp.join(control_dir, 'ptq_start.pth'))
    assert not any('quantizer' in key for key in control['state_dict'])
    assert not torch.equal(control['state_dict'][classifier], float_state[classifier])


def test_deploy_from_config(tiny_roads, tmp_path):
    work_dir = str(tmp_path / 'deploy')
    assert deploy_main([
        osp.join(ROOT, 'configs', 'sceneseg', 'deploy_sceneseg.py'), tiny_roads['config'],
        tiny_roads['checkpoint'], '--work-dir', work_dir, '--cfg-options',
        'quantization.calib_batches=1', 'verification.num_batches=1',
        # MSE, not the config's entropy: on these random weights entropy gives the residual add
        # of encoder.1.0 exactly the amax of the conv reading the same tensor, and OpenVINO then
        # runs that Add in f32 (not so on the trained small model)
        'quantization.calib_method=mse', 'quantization.placement_batches=4'
    ]) == 0
    report = json.load(open(osp.join(work_dir, 'deploy_report.json')))
    result = report['targets']['tensorrt']
    assert result['verification']['pytorch_fake_quant']['logits']['cosine'] > 0.99
    # the lint names exactly the layer the recipe leaves in float (DEFAULT_SKIP_LAYERS)
    assert {issue.split(':')[0]
            for issue in result['lint']} == {'/model/SceneSegHead/decode_layer_10/Conv'}
    rows = {row['model']: row['values'] for row in result['metrics']}
    assert 'sceneseg/pooled/class_average' in rows['onnxruntime']
    # the onnxruntime target fits its pairs before SiLU / GELU on the calibration batches
    # (quantization.placement_batches, at most as many as the dataloader has) and follows
    # PyTorch fake-quant as closely as the tensorrt graph does
    assert set(report['placement_feeds'].values()) == {4}
    ours = report['targets']['onnxruntime']['verification']['pytorch_fake_quant']
    assert ours['logits']['cosine'] > 0.99
    # OpenVINO runs every quantized layer INT8 and the skipped classifier in f32, by our names.
    openvino = report['targets']['openvino']
    # The float islands between INT8 layers: every squeeze-excitation block's average pool
    # (each GlobalAveragePool of the graph) and the gate multiplies after them, the context's
    # global mean and its gate, a QuantMul: OpenVINO runs Mul in f32 even with both inputs
    # quantized; nothing else.
    findings = [f for f in openvino['lint'] if not f32_deconvolution_finding(f)]
    islands = [finding.split(':')[0] for finding in findings]
    assert all('[float-island]' in finding for finding in findings)
    graph = onnx.load(osp.join(work_dir, 'int8_openvino.onnx')).graph
    pools = {n.name for n in graph.node if n.op_type == 'GlobalAveragePool'}
    assert pools and pools <= set(islands)
    others = [name for name in islands if name not in pools and not (
        name in ('/model/SceneContext/ReduceMean', '/model/SceneContext/gate/Mul')
        or name.endswith('/Mul') and '/block/' in name)]
    assert others == []
    float_layers = {row['layer'] for row in openvino['precision'] if not row['quantized']}
    assert float_layers == {'SceneSegHead.decode_layer_10'}
    assert all(row['int8'] for row in openvino['precision'] if openvino_runs_int8(row))
    assert sum(row['quantized'] for row in openvino['precision']) == 107  # 99 + 5 + 3
    assert 'sceneseg/pooled/class_average' in {
        row['model']: row['values'] for row in openvino['metrics']}['openvino']

    bench_dir = str(tmp_path / 'benchmark')
    assert benchmark_main([
        tiny_roads['config'], '--checkpoint', tiny_roads['checkpoint'], '--onnx',
        f'ONNX float={osp.join(work_dir, "float.onnx")}',
        f'ONNX INT8={osp.join(work_dir, "int8_onnxruntime.onnx")}', '--work-dir', bench_dir,
        '--images-per-dataset', '1', '--latency-runs', '2'
    ]) == 0
    bench = json.load(open(osp.join(bench_dir, 'benchmark.json')))
    onnx_float, torch_float = bench['models']['ONNX float'], bench['models']['PyTorch float']
    assert onnx_float['argmax_agreement_pct'] > 99.9 and onnx_float['min_logit_cosine'] > 0.9999
    assert onnx_float['metrics'] == pytest.approx(torch_float['metrics'], abs=0.05)
    assert bench['models']['ONNX INT8']['size_mb'] < 0.5 * onnx_float['size_mb']
    latency = bench['models']['ONNX INT8']['latency']
    assert latency['runs'] == 2 and 0 < latency['median_ms'] <= latency['p95_ms']
    assert len(os.listdir(osp.join(bench_dir, 'predictions'))) == 3  # one per dataset
    assert '| ONNX INT8 |' in open(osp.join(bench_dir, 'benchmark.md')).read()
    assert benchmark_main(
        [tiny_roads['config'], '--checkpoint', 'missing.pth', '--work-dir', bench_dir]) == 2
