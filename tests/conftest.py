"""Fixtures of the whole suite: the seed, and tiny generated data for CenterPoint and SceneSeg
(made once per session, only when a test asks for them)."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope='session')
def tiny(tmp_path_factory):
    """CenterPoint: a tiny dataset, the small config pointing at it, a float checkpoint."""
    from projects.CenterPoint.data.synthetic_lidar import SceneConfig, write_dataset
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


@pytest.fixture(scope='session')
def tiny_roads(tmp_path_factory):
    """SceneSeg: tiny generated road scenes, the small config pointing at them, a float
    checkpoint."""
    from projects.SceneSeg.data.synthetic_roads import STYLES, write_datasets
    folder = tmp_path_factory.mktemp('sceneseg')
    write_datasets(str(folder / 'data'), {name: 10 for name in STYLES}, seed=0)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'sceneseg', 'sceneseg_synthetic_small.py'))
    cfg.model.context_grid = (2, 4)  # 64 x 128 images keep the CI run short
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].dataset.data_root = str(folder / 'data')
        cfg[key].dataset.image_size = (64, 128)
        cfg[key].batch_size = 3
    cfg.test_dataloader = cfg.val_dataloader
    config_path = str(folder / 'cfg.py')
    cfg.dump(config_path)
    from projects.SceneSeg import SceneSegModel
    torch.manual_seed(0)
    model = SceneSegModel(**{k: v for k, v in cfg.model.items() if k != 'type'})
    checkpoint = str(folder / 'float.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    return {'folder': folder, 'config': config_path, 'checkpoint': checkpoint, 'cfg': cfg}
