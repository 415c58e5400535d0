"""mmdet3d's nuScenes pillar layout (10 classes, 6 tasks, 5-dim points, 0.2 m pillars) from the
shipped config, with config edits only, through train, test, ptq, qat, sensitivity and deploy.

CI runs it on a 25.6 m x 25.6 m window (a 128 x 128 canvas instead of 512 x 512) of the tiny
synthetic scenes: the window is the only edit, and it is an edit of the config too."""
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from projects.CenterPoint.hooks import SeparateHeadInitHook
from tests.conftest import ROOT
from projects.CenterPoint.quantization.adapter import CENTERPOINT
from tools.deploy import main as deploy_main
from tools.quantization_cli import main as cli_main
from tools.test import main as run_test_tool
from tools.train import main as train_main

SHIPPED = osp.join(ROOT, 'configs', 'centerpoint', 'centerpoint_pillar02_nus_10class_synthetic.py')
DEPLOY = osp.join(ROOT, 'configs', 'centerpoint', 'deploy_centerpoint_split.py')
ABSENT = ('construction_vehicle', 'trailer', 'barrier', 'motorcycle', 'traffic_cone')

WINDOW = '''_base_ = ['{shipped}']
point_cloud_range = [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]
grid_size = [128, 128, 1]
model = dict(
    data_preprocessor=dict(voxel_layer=dict(point_cloud_range=point_cloud_range,
                                            max_voxels=(4000, 4000))),
    pts_voxel_encoder=dict(point_cloud_range=point_cloud_range),
    pts_middle_encoder=dict(output_shape=grid_size[:2]),
    pts_bbox_head=dict(bbox_coder=dict(pc_range=point_cloud_range[:2])),
    train_cfg=dict(pts=dict(grid_size=grid_size, point_cloud_range=point_cloud_range)),
    test_cfg=dict(pts=dict(pc_range=point_cloud_range[:2])))
_load = dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5)
_range = dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range)
train_dataloader = dict(batch_size=2, dataset=dict(data_root='{data}', pipeline=[
    _load, dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True), _range,
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes={{{{_base_.class_names}}}}),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d'])]))
val_dataloader = dict(batch_size=2, dataset=dict(data_root='{data}', pipeline=[
    _load, _range, dict(type='Pack3DDetInputs', keys=['points'])]))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=100)
'''


@pytest.fixture(scope='module')
def nus(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp('nus10')
    config = str(folder / 'nus_window.py')
    with open(config, 'w') as f:
        f.write(WINDOW.format(shipped=SHIPPED, data=str(tiny['folder'] / 'data') + '/'))
    work_dir = str(folder / 'float')
    assert train_main([config, '--work-dir', work_dir]) == 0  # from scratch: no QATHook
    return {'folder': folder, 'config': config, 'checkpoint': osp.join(work_dir, 'epoch_1.pth')}


def prior_focal_loss(target: torch.Tensor, prior: float) -> float:
    """mmdet's GaussianFocalLoss (alpha 2, gamma 4) of a constant prediction ``prior`` against
    ``target``, averaged as CenterHead does (over the positives, at least 1)."""
    positive = target.eq(1).double()
    loss = (-math.log(prior) * (1 - prior)**2 * positive).sum()
    loss += (-math.log(1 - prior) * prior**2 * (1 - target.double())**4 * (1 - positive)).sum()
    return float(loss) / max(float(positive.sum()), 1.0)


def test_first_heatmap_losses_are_the_prior_on_six_tasks(nus):
    from mmdet3d.registry import MODELS
    from mmengine.runner import Runner
    cfg = Config.fromfile(nus['config'])
    init_default_scope('mmdet3d')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()

    class FakeRunner:
        logger = __import__('logging').getLogger('test')

    FakeRunner.model = model
    SeparateHeadInitHook().before_run(FakeRunner)
    batch = next(iter(Runner.build_dataloader(cfg.train_dataloader, seed=0)))
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    gt = [sample.gt_instances_3d for sample in data['data_samples']]
    heatmaps = model.pts_bbox_head.get_targets(gt)[0]
    prior = 1 / (1 + math.exp(2.19))  # init_bias -2.19
    assert len(heatmaps) == 6
    for task, target in enumerate(heatmaps):
        expected = prior_focal_loss(target, prior)
        measured = float(losses[f'task{task}.loss_heatmap'])
        # Within a factor 2 (the logits spread ~0.2 around the bias); before the fix (Kaiming
        # fan_out on the last conv) these were 3,000-40,000 on the 512 x 512 canvas.
        assert 0.5 * expected < measured < 2 * expected, (task, measured, expected)


def test_every_tool_on_the_ten_class_config(nus, capsys):
    folder, config, checkpoint = nus['folder'], nus['config'], nus['checkpoint']
    assert run_test_tool([config, checkpoint, '--work-dir', str(folder / 'test')]) == 0
    out = capsys.readouterr().out
    assert 'mAP over 5 of 10 classes' in out and 'absent: ' + ', '.join(ABSENT) in out
    assert '| det/AP_car |' in out and 'AP_barrier' not in out
    common = ['--config', config, '--checkpoint', checkpoint, '--calib-batches', '1']
    assert cli_main(['ptq', *common, '--method', 'max', '--output',
                     str(folder / 'ptq.pth')], CENTERPOINT) == 0
    assert cli_main(['sensitivity', *common, '--method', 'max', '--layers',
                     'pts_bbox_head.task_heads.3.*', '--eval-batches', '1', '--output',
                     str(folder / 'sens.csv')], CENTERPOINT) == 0
    assert osp.isfile(folder / 'sens.png')
    assert cli_main(['qat', *common, '--epochs', '1', '--output', str(folder / 'qat')],
                    CENTERPOINT) == 0
    capsys.readouterr()
    assert deploy_main([DEPLOY, config, str(folder / 'qat' / 'epoch_1.pth'), '--work-dir',
                        str(folder / 'deploy'), '--cfg-options',
                        'verification.num_batches=1']) == 0
    report = json.load(open(folder / 'deploy' / 'deploy_report.json'))
    # 5 point dims + 3 cluster-centre + 3 voxel-centre offsets; 20 points per pillar; 64 PFN
    # channels on a 128 x 128 canvas; pillar profile up to the config's test-time 4000
    assert report['input_shapes'] == {
        'decorated_pillars': [-1, 20, 11],
        'bev_canvas': [-1, 64, 128, 128]
    }
    encoder = report['tensorrt_profiles']['pts_voxel_encoder'][0]['decorated_pillars']
    assert encoder == [[1, 20, 11], [2000, 20, 11], [4000, 20, 11]]
    assert 'decorated_pillars:4000x20x11' in report['tensorrt_engine']['trtexec']
    assert 'bev_canvas:4x64x128x128' in report['tensorrt_engine']['trtexec']
    # the Autoware package: nuScenes' 5-dim points; 6 tasks, which the node does not read
    params = report['package']['model_params']
    assert params['point_feature_size'] == 5 and params['encoder_in_feature_size'] == 11
    assert len(params['class_names']) == 10 and params['class_names'][0] == 'CAR'
    assert 'the head has 6 tasks' in report['package']['warning']
