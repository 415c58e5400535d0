"""Tiny generated data, the small config pointing at it, and a float checkpoint."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from projects.CenterPoint.data.synthetic_lidar import SceneConfig, write_dataset

ROOT = osp.join(osp.dirname(__file__), '..', '..')


@pytest.fixture(scope='session')
def tiny(tmp_path_factory):
    """A tiny dataset, the small config pointing at it, and a float checkpoint."""
    folder = tmp_path_factory.mktemp('centerpoint')
    write_dataset(
        str(folder / 'data'), {
            'train': 4,
            'val': 2
        },
        seed=0,
        config=SceneConfig(num_beams=16, azimuth_step_deg=0.6))
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'centerpoint', 'centerpoint_pillar_synthetic_small.py'))
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].dataset.data_root = str(folder / 'data') + '/'
        cfg[key].batch_size = 2
    cfg.test_dataloader = cfg.val_dataloader
    config_path = str(folder / 'cfg.py')
    cfg.dump(config_path)
    init_default_scope('mmdet3d')
    from mmdet3d.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = str(folder / 'float.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    return {'folder': folder, 'config': config_path, 'checkpoint': checkpoint, 'cfg': cfg}
