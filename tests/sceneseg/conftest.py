"""Tiny generated road scenes, the small SceneSeg config pointing at them, a float checkpoint."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from projects.SceneSeg.data.synthetic_roads import STYLES, write_datasets

ROOT = osp.join(osp.dirname(__file__), '..', '..')


@pytest.fixture(scope='session')
def tiny_roads(tmp_path_factory):
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
