"""tools/centerpoint_quantization.py ptq | sensitivity | qat on tiny generated data."""
import csv
import os.path as osp

import torch

from projects.CenterPoint.quantization.adapter import CENTERPOINT
from quantization import load_quantized_checkpoint, named_quantizers
from tools.quantization_cli import main

ROOT = osp.join(osp.dirname(__file__), '..', '..')


def run(argv):
    return main(argv, CENTERPOINT)


def amax_of(path):
    state_dict = torch.load(path, weights_only=True)['state_dict']
    return {k: v for k, v in state_dict.items() if k.endswith('.amax')}


def test_ptq_saves_checkpoints_that_rebuild(tiny, capsys):
    output = str(tiny['folder'] / 'ptq.pth')
    assert run([
        'ptq', '--config', tiny['config'], '--checkpoint', tiny['checkpoint'],
        '--calib-batches', '1', '--method', 'max', 'entropy', '--output', output,
        '--calib-split', 'val'
    ]) == 0
    printed = capsys.readouterr().out
    assert '| float |' in printed and '| PTQ (max) |' in printed and 'mAP' in printed
    assert '| PTQ (entropy) |' in printed
    from mmdet3d.registry import MODELS
    fresh = MODELS.build(tiny['cfg'].model)
    recipe = load_quantized_checkpoint(fresh, str(tiny['folder'] / 'ptq_entropy.pth'))
    assert recipe.preparations == ['SECONDFPNConcat']
    assert len(recipe.bn_pairs) == len(fresh.pts_voxel_encoder.pfn_layers)
    assert type(fresh.pts_neck.concat).__name__ == 'QuantConcat'
    quantizers = dict(named_quantizers(fresh))
    assert all(q.has_amax for q in quantizers.values() if q.is_enabled)
    assert {name.rpartition('.')[0]
            for name, q in quantizers.items() if not q.is_enabled} == {
                'pts_bbox_head.task_heads.0.reg.0.conv', 'pts_bbox_head.task_heads.0.reg.1',
                'pts_bbox_head.task_heads.0.heatmap.0.conv'
            }
    # One calibration pass for both methods gives what a run with that method alone gives
    # (validation batches: no random augmentation, so both runs see the same data).
    single = str(tiny['folder'] / 'ptq_single.pth')
    assert run([
        'ptq', '--config', tiny['config'], '--checkpoint', tiny['checkpoint'],
        '--calib-batches', '1', '--method', 'entropy', '--output', single, '--calib-split',
        'val'
    ]) == 0
    expected, shared_pass = amax_of(single), amax_of(str(tiny['folder'] / 'ptq_entropy.pth'))
    assert expected.keys() == shared_pass.keys()
    assert all(torch.equal(expected[k], shared_pass[k]) for k in expected)
    by_max = amax_of(str(tiny['folder'] / 'ptq_max.pth'))
    assert any(not torch.equal(by_max[k], expected[k]) for k in expected)


def test_sensitivity_writes_csv_and_png(tiny, capsys):
    output = str(tiny['folder'] / 'sensitivity.csv')
    assert run([
        'sensitivity', '--config', tiny['config'], '--checkpoint', tiny['checkpoint'],
        '--calib-batches', '1', '--output', output, '--layers', 'pts_neck.deblocks.2*',
        'pts_neck.concat', '--eval-batches', '1'
    ]) == 0
    rows = list(csv.DictReader(open(output)))
    assert {r['layer'] for r in rows} == {'pts_neck.deblocks.2.0', 'pts_neck.concat'}
    assert osp.isfile(output.replace('.csv', '.png'))
    assert 'suggested skip list' in capsys.readouterr().out


def test_qat_trains_and_saves(tiny):
    work_dir = str(tiny['folder'] / 'qat')
    assert run([
        'qat', '--config', tiny['config'], '--checkpoint', tiny['checkpoint'],
        '--calib-batches', '1', '--epochs', '1', '--output', work_dir
    ]) == 0
    saved = torch.load(osp.join(work_dir, 'epoch_1.pth'), weights_only=True)
    assert saved['meta']['quantization']['preparations'] == ['SECONDFPNConcat']
    assert any(key.endswith('input_quantizer.amax') for key in saved['state_dict'])


def failing(argv, capsys) -> str:
    assert run(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ')
    return lines[0]


def test_bad_input_is_one_line(tiny, capsys):
    base = ['ptq', '--config', tiny['config'], '--output', str(tiny['folder'] / 'bad.pth')]
    assert 'missing.pth does not exist' in failing(
        base + ['--checkpoint', str(tiny['folder'] / 'missing.pth')], capsys)
    assert '--calib-batches must be at least 1' in failing(
        base + ['--checkpoint', tiny['checkpoint'], '--calib-batches', '0'], capsys)
    demo_config = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes.py')
    assert 'does not build a pillar CenterPoint (got DemoNet' in failing([
        'ptq', '--config', demo_config, '--checkpoint', tiny['checkpoint'], '--output',
        str(tiny['folder'] / 'bad.pth')
    ], capsys)
    from projects.Demo import DemoNet
    wrong = str(tiny['folder'] / 'demonet.pth')
    torch.save({'state_dict': DemoNet().state_dict()}, wrong)
    assert 'demonet.pth does not fit CenterPoint: missing keys' in failing(
        base + ['--checkpoint', wrong], capsys)
    assert not osp.exists(tiny['folder'] / 'bad.pth')


def test_tools_test_evaluates_float_and_quantized(tiny, capsys):
    from tools.test import main as test_main
    assert test_main([tiny['config'], tiny['checkpoint']]) == 0
    assert '| float checkpoint |' in capsys.readouterr().out
    quantized = str(tiny['folder'] / 'ptq.pth')
    if not osp.exists(quantized):
        run([
            'ptq', '--config', tiny['config'], '--checkpoint', tiny['checkpoint'],
            '--calib-batches', '1', '--output', quantized
        ])
        capsys.readouterr()
    assert test_main([tiny['config'], quantized]) == 0
    printed = capsys.readouterr().out
    assert '| quantized checkpoint |' in printed and 'det/mAP' in printed
    assert test_main([tiny['config'], str(tiny['folder'] / 'none.pth')]) == 2


def test_more_calibration_batches_than_data_warns_and_records_the_truth(tiny, caplog):
    output = str(tiny['folder'] / 'ptq_1000.pth')
    with caplog.at_level('WARNING', logger='quantization.calibration'):
        assert run([
            'ptq', '--config', tiny['config'], '--checkpoint', tiny['checkpoint'],
            '--calib-batches', '1000', '--output', output
        ]) == 0
    # 4 training scenes in batches of 2
    assert 'calibration asked for 1000 batches but the data holds 2' in caplog.text
    meta = torch.load(output, weights_only=True)['meta']
    assert meta['calibration'] == dict(batches=2, requested=1000, method='mse', split='train',
                                       equalize=False, bias_correction=False, adaround_batches=0,
                                       per_layer_amax={}, learned_ranges=None)
