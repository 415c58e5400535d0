"""The API layer called directly (what the tools print comes from these results), and the tools'
mmdet3d-style flags: defaults in every --help, --auto-scale-lr."""
import copy
import csv
import os.path as osp

import pytest
import torch

import apis
from apis.ptq import AMAX_GRID
from apis.qat import PTQ_START
from projects.CenterPoint.quantization.adapter import CENTERPOINT
from quantization import UserError, load_quantized_checkpoint
from tests.conftest import ROOT
from tools import deploy, quantization_cli, test, train


def test_ptq_sensitivity_and_qat_return_what_they_write(tiny, tmp_path):
    cfg = copy.deepcopy(tiny['cfg'])  # a Config object, as scripts pass it
    ptq = apis.ptq(cfg, tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'ptq.pth'),
                   methods=['max', 'mse'], calib_batches=1)
    assert [name for name, _ in ptq.rows] == ['float', 'PTQ (max)', 'PTQ (mse)']
    assert ptq.calib_batches == 1 and ptq.skip_layers == list(CENTERPOINT.default_skip_layers)
    saved = torch.load(ptq.checkpoints['mse'], weights_only=True)['state_dict']
    assert ptq.amax and all(torch.equal(saved[f'{name}.amax'], amax)
                            for name, amax in ptq.amax.items())
    assert '| PTQ (mse) |' in ptq.table()

    sens = apis.sensitivity(cfg, tiny['checkpoint'], CENTERPOINT, str(tmp_path / 's.csv'),
                            calib_batches=1, method='max', layers=['pts_neck.*'],
                            eval_batches=1)
    with open(sens.csv, newline='') as f:
        rows = list(csv.DictReader(f))
    assert [r['layer'] for r in rows] == [r.layer for r in sens.report.layers]
    assert sens.frames == 2 and osp.isfile(sens.png)  # one validation batch of 2 scenes
    # the figures the CLI prints come with intervals around the values the report holds
    key, report = CENTERPOINT.metric_key, sens.report
    assert sens.headline.metric['float'][key].value == pytest.approx(report.float_metric)
    assert sens.headline.difference['int8'][key].value == pytest.approx(
        report.quant_metric - report.float_metric)
    for row in report.top(10):
        loss, gain = sens.intervals[row.layer]
        assert loss.value == pytest.approx(row.delta_only)
        assert gain.value == pytest.approx(row.gain_all_but)
        assert loss.low <= loss.high and gain.low <= gain.high
    assert '[' in sens.table()  # intervals printed beside loss and gain
    assert ptq.intervals.metric['PTQ (mse)'][key].value == pytest.approx(
        dict(ptq.rows)['PTQ (mse)'][key])

    qat = apis.qat(cfg, tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'qat'), epochs=1,
                   calib_batches=1, lr=1e-4)
    assert osp.isfile(qat.checkpoint) and 'det/mAP' in qat.metrics and qat.lr == 1e-4
    assert 'starting from' in qat.start


def test_ptq_with_equalization_and_bias_correction_corrects_each_method_from_the_same_start(
        tiny, tmp_path):
    both = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'both.pth'),
                    methods=['max', 'mse'], calib_batches=1, equalize=True,
                    bias_correction=True, bootstrap_rounds=0)
    alone = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'mse.pth'),
                     methods=['mse'], calib_batches=1, equalize=True, bias_correction=True,
                     bootstrap_rounds=0)
    plain = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'plain.pth'),
                     methods=['mse'], calib_batches=1, bootstrap_rounds=0)
    checkpoints = {name: torch.load(path, weights_only=False)
                   for name, path in (('both', both.checkpoints['mse']),
                                      ('alone', alone.checkpoints['mse']),
                                      ('plain', plain.checkpoints['mse']))}
    calibration = checkpoints['both']['meta']['calibration']
    assert calibration['equalize'] and calibration['bias_correction']
    assert checkpoints['both']['meta']['quantization']['equalize']
    # mse after max is corrected from the calibrated biases, as if it ran alone
    a, b = checkpoints['both']['state_dict'], checkpoints['alone']['state_dict']
    assert all(torch.equal(a[key], b[key]) for key in a)
    biases = [key for key in a if key.endswith('.bias') and 'bn' not in key]
    plain_state = checkpoints['plain']['state_dict']
    assert any(not torch.allclose(a[key], plain_state[key]) for key in biases)
    fresh = build_model(tiny['cfg'])
    load_quantized_checkpoint(fresh, both.checkpoints['mse'])  # rebuilds, loads strictly


def test_ptq_per_layer_amax_loads_and_records_each_layers_choice(tiny, tmp_path):
    result = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'p.pth'),
                      calib_batches=1, skip_layers=[], bootstrap_rounds=0, per_layer_amax=1)
    saved = torch.load(result.checkpoints['mse'], weights_only=False)
    chosen = saved['meta']['calibration']['per_layer_amax']
    assert chosen == {c.layer: c.method for c in result.amax_choices}
    assert len(chosen) == 25  # the 26 quantized modules but the neck's Concat (no weight)
    assert {'pts_bbox_head.task_heads.0.reg.1', 'pts_backbone.blocks.0.0'} <= set(chosen)
    for choice in result.amax_choices:  # the loaded amax is the candidate of least error
        assert saved['state_dict'][f'{choice.layer}.input_quantizer.amax'].item() == \
            pytest.approx(choice.amax)
        assert choice.errors[choice.method] == min(choice.errors.values())
        assert len(choice.errors) == 4 + AMAX_GRID


def test_ptq_learn_ranges_saves_the_learned_amax_and_records_the_distances(tiny, tmp_path):
    # from max's ranges, which leave room to win
    calibrated = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'c.pth'),
                          ['max'], calib_batches=1, skip_layers=[], bootstrap_rounds=0)
    result = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'p.pth'),
                      ['max'], calib_batches=1, skip_layers=[], bootstrap_rounds=0,
                      learn_ranges=1, range_steps=40)
    ranges = result.learned_ranges
    assert ranges.kept and ranges.loss_after < ranges.loss_before
    saved = torch.load(result.checkpoints['max'], weights_only=False)
    assert saved['meta']['calibration']['learned_ranges'] == dict(
        batches=1, steps=40, kept=True, distance_before=ranges.loss_before,
        distance_after=ranges.loss_after)
    moved = 0
    for name, (before, after) in ranges.amax.items():  # from the plain PTQ's ranges
        assert calibrated.amax[name].item() == pytest.approx(before)
        assert saved['state_dict'][f'{name}.amax'].item() == pytest.approx(after)
        moved += after != pytest.approx(before, rel=1e-3)
    assert len(ranges.amax) == 26 and moved > 13  # every activation range, most of them moved
    # with bias correction, the biases are corrected first, on the calibrated ranges: the
    # same biases as bias correction alone gives
    corrected = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'b.pth'),
                         ['max'], calib_batches=1, skip_layers=[], bootstrap_rounds=0,
                         bias_correction=True)
    both = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'r.pth'),
                    ['max'], calib_batches=1, skip_layers=[], bootstrap_rounds=0,
                    bias_correction=True, learn_ranges=1, range_steps=5)
    biases = [torch.load(r.checkpoints['max'], weights_only=False)['state_dict']
              for r in (corrected, both)]
    bias_keys = [k for k in biases[0] if k.endswith('.bias')]
    assert len(bias_keys) > 20
    assert all(torch.equal(biases[0][k], biases[1][k]) for k in bias_keys)
    with pytest.raises(UserError, match='--learn-ranges sets each layer'):
        apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'q.pth'),
                 methods=['mse', 'max'], learn_ranges=1)


def test_sensitivity_with_per_layer_amax_starts_from_the_ptq_it_gives(tiny, tmp_path):
    ptq = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'p.pth'),
                   calib_batches=1, skip_layers=[], bootstrap_rounds=0, per_layer_amax=1)
    sens = apis.sensitivity(tiny['cfg'], tiny['checkpoint'], CENTERPOINT,
                            str(tmp_path / 's.csv'), calib_batches=1, bootstrap_rounds=0,
                            layers=['pts_bbox_head.task_heads.0.heatmap.0'], per_layer_amax=1)
    key = CENTERPOINT.metric_key
    amax = 'pts_bbox_head.task_heads.0.heatmap.0.conv.input_quantizer'
    chosen = ptq.amax[amax]
    # all INT8 is ptq's model; the one layer analysed, alone, is ptq's with the rest in float
    assert sens.report.quant_metric == pytest.approx(dict(ptq.rows)['PTQ (mse)'][key])
    sole = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'r.pth'),
                    calib_batches=1, bootstrap_rounds=0, per_layer_amax=1,
                    skip_layers=['pts_voxel_encoder', 'pts_backbone', 'pts_neck',
                                 'pts_bbox_head.shared_conv', 'pts_bbox_head.task_heads.0.reg',
                                 'pts_bbox_head.task_heads.0.height',
                                 'pts_bbox_head.task_heads.0.dim', 'pts_bbox_head.task_heads.0.rot',
                                 'pts_bbox_head.task_heads.0.vel',
                                 'pts_bbox_head.task_heads.0.heatmap.1'])
    assert torch.equal(sole.amax[amax], chosen)
    assert sens.report.layers[0].only_quantized == pytest.approx(
        dict(sole.rows)['PTQ (mse)'][key])


def test_qat_with_the_ptq_algorithms_trains_from_the_model_ptq_gives(tiny, tmp_path):
    algorithms = dict(per_layer_amax=1, bias_correction=True, learn_ranges=1, range_steps=5)
    ptq = apis.ptq(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'p.pth'),
                   calib_batches=1, skip_layers=[], bootstrap_rounds=0, **algorithms)
    qat = apis.qat(tiny['cfg'], tiny['checkpoint'], CENTERPOINT, str(tmp_path / 'qat'),
                   epochs=1, calib_batches=1, lr=1e-4, skip_layers=[], bootstrap_rounds=0,
                   **algorithms)
    start = torch.load(tmp_path / 'qat' / PTQ_START, weights_only=False)
    ptq_saved = torch.load(ptq.checkpoints['mse'], weights_only=False)
    assert start['meta']['calibration'] == ptq_saved['meta']['calibration']
    assert start['meta']['calibration']['learned_ranges']['steps'] == 5
    assert all(torch.equal(start['state_dict'][key], value)
               for key, value in ptq_saved['state_dict'].items())  # corrected biases too
    trained = torch.load(qat.checkpoint, weights_only=False)
    assert trained['meta']['calibration']['per_layer_amax'] == \
        start['meta']['calibration']['per_layer_amax']
    # ranges fixed through QAT: every amax is the one PTQ left; the weights trained
    for name, amax in ptq.amax.items():
        if 'input_quantizer' in name:
            assert torch.equal(trained['state_dict'][f'{name}.amax'], amax), name
    weight = 'pts_bbox_head.task_heads.0.reg.1.weight'
    assert not torch.equal(trained['state_dict'][weight], start['state_dict'][weight])
    assert 'calibrated into' in qat.start


def build_model(cfg):
    from mmdet3d.registry import MODELS
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('main, argv', [
    (train.main, ['-h']), (test.main, ['-h']), (deploy.main, ['-h']),
    (lambda argv: quantization_cli.main(argv, CENTERPOINT), ['ptq', '-h']),
    (lambda argv: quantization_cli.main(argv, CENTERPOINT), ['qat', '-h']),
])
def test_help_shows_mmdet3d_flags_and_defaults(main, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    text = capsys.readouterr().out
    assert stop.value.code == 0 and '(default:' in text
    flags = {'--launcher'}
    if main is train.main:
        flags |= {'--work-dir', '--amp', '--auto-scale-lr', '--resume', '--cfg-options',
                  '--local-rank', '--load-from'}
    elif main is test.main:
        flags |= {'--work-dir', '--show-dir', '--cfg-options'}
    elif main is deploy.main:
        flags = {'--device', '--log-level', '--work-dir'}
    else:
        flags |= {'--device', '--cfg-options', '--calib-batches'}
    assert all(flag in text for flag in flags), flags


def test_auto_scale_lr_scales_by_the_batch(tmp_path):
    demo = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes.py')
    options = ['train_dataloader.dataset.num_samples=32', 'train_dataloader.batch_size=8',
               'train_cfg.max_epochs=1', 'train_cfg.val_interval=100',
               'auto_scale_lr.base_batch_size=32']
    assert train.main([demo, '--auto-scale-lr', '--work-dir', str(tmp_path), '--cfg-options',
                       *options]) == 0
    state = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)['optimizer']
    # 1 process x batch 8 against a base of 32: the config's 3e-3 scaled by 1/4
    assert state['param_groups'][0]['initial_lr'] == pytest.approx(3e-3 * 8 / 32)
