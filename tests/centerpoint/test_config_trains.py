"""The small synthetic CenterPoint config builds, trains one epoch and validates (tiny data)."""
import os.path as osp

from mmengine.config import Config
from mmengine.runner import Runner

from projects.CenterPoint.data.synthetic_lidar import SceneConfig, write_dataset

CONFIG = osp.join(
    osp.dirname(__file__), '..', '..', 'configs', 'centerpoint',
    'centerpoint_pillar_synthetic_small.py')


def test_small_config_trains_and_validates(tmp_path):
    data_root = str(tmp_path / 'data') + '/'
    write_dataset(
        data_root, {
            'train': 4,
            'val': 2
        },
        seed=0,
        config=SceneConfig(num_beams=16, azimuth_step_deg=0.6))
    cfg = Config.fromfile(CONFIG)
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].dataset.data_root = data_root
        cfg[loader].batch_size = 2
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()
    assert set(metrics) >= {'det/mAP', 'det/AP_car', 'det/AP_pedestrian'}
    assert 0.0 <= metrics['det/mAP'] <= 100.0
    assert osp.isfile(osp.join(cfg.work_dir, 'epoch_1.pth'))
