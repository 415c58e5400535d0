"""The synthetic lidar generator, the dataset through mmdet3d's pipeline, and the mAP metric."""
import os.path as osp
import pickle

import numpy as np
import pytest
from nuscenes.eval.common.data_classes import EvalBoxes

from projects.CenterPoint.data.synthetic_lidar import (CLASSES, NUM_POINT_FEATURES, SceneConfig,
                                                       generate_scene, ray_box_distances,
                                                       write_dataset)
from projects.CenterPoint.metric import detection_map, to_detection_boxes

SMALL = SceneConfig(num_beams=16, azimuth_step_deg=1.0)


def test_ray_box_distances_by_hand():
    directions = np.array([[1.0, 0, 0], [0, 1.0, 0], [np.cos(0.1), np.sin(0.1), 0], [-1.0, 0, 0]])
    boxes = np.array([[10.0, 0, 0, 4, 2, 2, 0.0], [0, 10, 0, 4, 2, 2, np.pi / 2]])
    distances = ray_box_distances(directions, boxes)
    assert distances[0, 0] == pytest.approx(8.0)  # near face at x = 10 - 4 / 2
    assert distances[1, 1] == pytest.approx(8.0)  # rotated box: its length lies along y
    assert distances[2, 0] == pytest.approx(8.0 / np.cos(0.1))
    assert np.isinf(distances[3]).all() and np.isinf(distances[0, 1])


def test_scene_is_deterministic_and_physical():
    scene = generate_scene(np.random.default_rng([7, 1]), SMALL)
    again = generate_scene(np.random.default_rng([7, 1]), SMALL)
    assert np.array_equal(scene['points'], again['points'])
    assert scene['points'].shape[1] == NUM_POINT_FEATURES and scene['points'].dtype == np.float32
    assert not np.array_equal(scene['points'],
                              generate_scene(np.random.default_rng([7, 2]), SMALL)['points'])
    # ground returns lie on the ground plane (within the range noise), none below it
    assert scene['points'][:, 2].min() > -1.8 - 0.2
    # every object's returns lie inside its box (slightly grown for range noise)
    boxes = scene['boxes']
    for box, count in zip(boxes, scene['num_points']):
        local = scene['points'][:, :2] - box[:2]
        cos, sin = np.cos(-box[6]), np.sin(-box[6])
        x, y = local[:, 0] * cos - local[:, 1] * sin, local[:, 0] * sin + local[:, 1] * cos
        inside = (abs(x) <= box[3] / 2 + 0.1) & (abs(y) <= box[4] / 2 + 0.1) & (
            abs(scene['points'][:, 2] - box[2]) <= box[5] / 2 + 0.1)
        assert inside.sum() >= count
    # near objects get more returns than far ones of the same class (range-dependent density)
    cars = scene['labels'] == 0
    if cars.sum() >= 2:
        ranges = np.hypot(*boxes[cars, :2].T)
        assert scene['num_points'][cars][ranges.argmin()] >= scene['num_points'][cars][
            ranges.argmax()]


def test_written_dataset_loads_through_mmdet3d_pipeline(tmp_path):
    from mmengine.registry import init_default_scope
    from mmdet3d.registry import DATASETS
    init_default_scope('mmdet3d')
    import projects.CenterPoint.data  # noqa: F401  (registers the dataset)
    info_files = write_dataset(str(tmp_path), {'train': 3, 'val': 2}, seed=0, config=SMALL)
    infos = pickle.load(open(info_files['val'], 'rb'))
    assert infos['metainfo']['categories'] == {name: i for i, name in enumerate(CLASSES)}
    assert [info['sample_idx'] for info in infos['data_list']] == [3, 4]  # splits do not overlap
    point_range = [-40.96, -40.96, -3.0, 40.96, 40.96, 5.0]
    pipeline = [
        dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=[0, 1, 2, 4]),
        dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
        dict(type='GlobalRotScaleTrans', rot_range=[-0.39, 0.39], scale_ratio_range=[0.95, 1.05]),
        dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
        dict(type='PointsRangeFilter', point_cloud_range=point_range),
        dict(type='ObjectRangeFilter', point_cloud_range=point_range),
        dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d']),
    ]
    dataset = DATASETS.build(
        dict(
            type='SyntheticLidarDataset',
            data_root=str(tmp_path),
            ann_file='infos_train.pkl',
            pipeline=pipeline))
    assert len(dataset) == 3
    sample = dataset[0]
    points = sample['inputs']['points']
    assert points.shape[1] == 4 and points[:, :2].abs().max() <= 40.96
    gt = sample['data_samples'].gt_instances_3d
    assert gt.bboxes_3d.tensor.shape[1] == 9 and len(gt.labels_3d) > 0
    raw = pickle.load(open(info_files['train'], 'rb'))['data_list'][0]
    valid = [i for i in raw['instances'] if i['bbox_3d_isvalid']]
    assert len(gt.labels_3d) <= len(valid)  # boxes without points never become targets
    stored = np.fromfile(
        osp.join(tmp_path, 'points', raw['lidar_points']['lidar_path']), np.float32)
    assert stored.size % NUM_POINT_FEATURES == 0


def boxes(*centres):
    return np.array([[x, y, 0.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0] for x, y in centres])


def test_map_against_hand_computed_values():
    gt, perfect, half = EvalBoxes(), EvalBoxes(), EvalBoxes()
    gt.add_boxes('s0', to_detection_boxes('s0', boxes((10, 0), (-10, 5)), [0, 0], CLASSES))
    gt.add_boxes('s1', to_detection_boxes('s1', boxes((0, 20)), [4], CLASSES))
    perfect.add_boxes(
        's0',
        to_detection_boxes('s0', boxes((10, 0), (-10, 5)), [0, 0], CLASSES, np.array([0.9, 0.8])))
    perfect.add_boxes('s1', to_detection_boxes('s1', boxes((0.3, 20)), [4], CLASSES,
                                               np.array([0.7])))
    result = detection_map(gt, perfect, ['car', 'pedestrian'])
    assert result['AP_car'] == pytest.approx(100.0)
    assert result['AP_pedestrian'] == pytest.approx(100.0)  # 0.3 m off: within every threshold
    # A class with no ground truth is absent from the result and from the mean (not a 0).
    with_absent = detection_map(gt, perfect, ['car', 'bus', 'pedestrian'])
    assert 'AP_bus' not in with_absent and with_absent['mAP'] == pytest.approx(100.0)
    # One of two cars found, 1.5 m off: matched at 2 and 4 m only. nuScenes' AP at a matched
    # threshold: precision 1 up to recall 0.5, i.e. 40 of the 90 recall points above 0.1 at
    # (1 - 0.1) / (1 - 0.1) -> 40 / 90. Unmatched thresholds give 0. Mean over 4 thresholds.
    half.add_boxes('s0', to_detection_boxes('s0', boxes((11.5, 0)), [0], CLASSES, np.array([0.9])))
    half.add_boxes('s1', [])
    result = detection_map(gt, half, ['car'])
    assert result["AP_car"] == pytest.approx(100.0 * (0 + 0 + 40 / 90 + 40 / 90) / 4, abs=1e-6)


def test_a_split_written_alone_has_the_scenes_it_has_among_all(tmp_path):
    splits = {'train': 2, 'val': 1, 'test': 2}
    everything = write_dataset(str(tmp_path / 'all'), splits, seed=3, config=SMALL)
    alone = write_dataset(str(tmp_path / 'alone'), splits, seed=3, config=SMALL, only=['test'])
    assert set(everything) == {'train', 'val', 'test'} and set(alone) == {'test'}
    assert not osp.exists(tmp_path / 'alone' / 'infos_train.pkl')
    infos = [pickle.load(open(path, 'rb'))['data_list'] for path in (everything['test'],
                                                                     alone['test'])]
    names = [info['lidar_points']['lidar_path'] for info in infos[0]]
    assert names == [info['lidar_points']['lidar_path'] for info in infos[1]]
    assert names == ['000003.bin', '000004.bin']  # numbered after train and val
    for name in names:
        assert (tmp_path / 'all' / 'points' / name).read_bytes() == (
            tmp_path / 'alone' / 'points' / name).read_bytes()
