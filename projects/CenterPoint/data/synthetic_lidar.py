"""Synthetic lidar scenes, written in mmdet3d's on-disk format (points .bin + v2 info .pkl).

A 32-beam spinning lidar (sensor at the origin, ground plane ``SENSOR_HEIGHT`` below) is ray-cast
against the ground, labelled objects of the five AWML classes (oriented boxes) and unlabelled
clutter (poles, walls). The first surface a ray hits returns a point, so objects occlude what is
behind them and the point density falls with range as on a real sensor; each return gets range
noise, some returns drop out. Every scene is a deterministic function of ``(seed, index)``.

Frame: mmdet3d's LiDAR frame, x forward, y left, z up. Boxes are
``[x, y, z, l, w, h, yaw]`` with (x, y, z) the gravity centre, l along the heading, yaw from +x
towards +y, as mmdet3d's v2 infos store them.
"""
import os
import os.path as osp
import pickle
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from quantization.fileio import write_bytes_atomic

CLASSES = ('car', 'truck', 'bus', 'bicycle', 'pedestrian')
#: mean (l, w, h) in metres and the mean count per scene
CLASS_SHAPES = {
    'car': ((4.6, 1.9, 1.6), 6),
    'truck': ((7.5, 2.5, 3.0), 3),
    'bus': ((11.0, 2.9, 3.3), 2),
    'bicycle': ((1.8, 0.6, 1.3), 3),
    'pedestrian': ((0.7, 0.7, 1.75), 4),
}
SENSOR_HEIGHT = 1.8  # m above the ground
MAX_RANGE = 70.0  # m
NUM_POINT_FEATURES = 5  # x, y, z, intensity, time lag (nuScenes layout)


@dataclass
class SceneConfig:
    """Sensor and layout of a scene.

    Args:
        extent (float): Objects and clutter lie within ``|x|, |y| < extent`` m.
        num_beams (int): Lidar beams between ``elevation_deg`` limits.
        azimuth_step_deg (float): Horizontal angular resolution.
        range_noise (float): Std of the range error, m.
        dropout (float): Fraction of returns lost.
    """
    extent: float = 24.0
    num_beams: int = 32
    elevation_deg: Tuple[float, float] = (-25.0, 8.0)
    azimuth_step_deg: float = 0.3
    range_noise: float = 0.02
    dropout: float = 0.03


def _ray_directions(config: SceneConfig) -> np.ndarray:
    elevations = np.deg2rad(np.linspace(*config.elevation_deg, config.num_beams))
    azimuths = np.deg2rad(np.arange(-180.0, 180.0, config.azimuth_step_deg))
    elev, azim = np.meshgrid(elevations, azimuths, indexing='ij')
    return np.stack([np.cos(elev) * np.cos(azim),
                     np.cos(elev) * np.sin(azim),
                     np.sin(elev)],
                    axis=-1).reshape(-1, 3).astype(np.float64)


def ray_box_distances(directions: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Distance along each ray (from the origin) to each box, ``inf`` where it misses.

    Args:
        directions (ndarray): (R, 3) unit ray directions.
        boxes (ndarray): (B, 7) boxes ``[x, y, z, l, w, h, yaw]``, z the gravity centre.

    Returns:
        ndarray: (R, B) distances in m (slab test in each box's frame).
    """
    if len(boxes) == 0:
        return np.full((len(directions), 0), np.inf)
    cos, sin = np.cos(-boxes[:, 6]), np.sin(-boxes[:, 6])
    # the origin and the directions in each box's frame
    origin = np.stack([
        cos * -boxes[:, 0] - sin * -boxes[:, 1], sin * -boxes[:, 0] + cos * -boxes[:, 1],
        -boxes[:, 2]
    ],
                      axis=-1)  # (B, 3)
    local = np.stack([
        directions[:, None, 0] * cos - directions[:, None, 1] * sin,
        directions[:, None, 0] * sin + directions[:, None, 1] * cos,
        np.broadcast_to(directions[:, None, 2], (len(directions), len(boxes)))
    ],
                     axis=-1)  # (R, B, 3)
    half = boxes[:, 3:6] / 2
    with np.errstate(divide='ignore', invalid='ignore'):
        t1 = (-half - origin) / local
        t2 = (half - origin) / local
    t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (t_far >= np.maximum(t_near, 0)) & (t_near > 0)
    return np.where(hit, t_near, np.inf)


def _place(rng,
           footprints: List[Tuple[float, float, float]],
           radius: float,
           extent: float,
           min_range: float,
           tries: int = 50):
    """An (x, y) at least ``radius`` + others' radius away from every placed footprint."""
    for _ in range(tries):
        x, y = rng.uniform(-extent, extent, size=2)
        if np.hypot(x, y) < min_range:
            continue
        if all(np.hypot(x - fx, y - fy) > radius + fr + 0.5 for fx, fy, fr in footprints):
            return x, y
    return None


def generate_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig()) -> Dict:
    """One scene: ``points`` (N, 5) float32, ``boxes`` (M, 7), ``labels`` (M,), ``num_points``
    (M,) returns per box, ``velocities`` (M, 2) (zeros: scenes are single static sweeps)."""
    ground_z = -SENSOR_HEIGHT
    footprints, boxes, labels = [], [], []
    for label, name in enumerate(CLASSES):
        (length, width, height), mean_count = CLASS_SHAPES[name]
        for _ in range(rng.poisson(mean_count)):
            dims = np.array([length, width, height]) * rng.uniform(0.85, 1.15, size=3)
            xy = _place(rng, footprints, np.hypot(*dims[:2]) / 2, config.extent, 3.0)
            if xy is None:
                continue
            footprints.append((*xy, np.hypot(*dims[:2]) / 2))
            boxes.append([*xy, ground_z + dims[2] / 2, *dims, rng.uniform(-np.pi, np.pi)])
            labels.append(label)
    clutter = []
    for _ in range(rng.integers(3, 8)):  # poles
        xy = _place(rng, footprints, 0.3, config.extent, 6.0)
        if xy is not None:
            footprints.append((*xy, 0.3))
            clutter.append([*xy, ground_z + 2.0, 0.3, 0.3, 4.0, 0.0])
    for _ in range(rng.integers(1, 4)):  # walls
        length = rng.uniform(8, 20)
        xy = _place(rng, footprints, length / 2, config.extent, 15.0)
        if xy is not None:
            footprints.append((*xy, length / 2))
            height = rng.uniform(2.0, 3.0)
            clutter.append(
                [*xy, ground_z + height / 2, length, 0.3, height,
                 rng.uniform(-np.pi, np.pi)])
    boxes = np.array(boxes, np.float64).reshape(-1, 7)
    surfaces = np.concatenate([boxes, np.array(clutter, np.float64).reshape(-1, 7)])

    directions = _ray_directions(config)
    distances = ray_box_distances(directions, surfaces)
    with np.errstate(divide='ignore'):
        ground = np.where(directions[:, 2] < 0, ground_z / directions[:, 2], np.inf)
    all_distances = np.concatenate([distances, ground[:, None]], axis=1)
    nearest = all_distances.argmin(axis=1)
    distance = all_distances[np.arange(len(directions)), nearest]
    kept = (distance < MAX_RANGE) & (rng.random(len(directions)) >= config.dropout)
    distance = distance[kept] + rng.normal(0, config.range_noise, kept.sum())
    nearest = nearest[kept]
    xyz = directions[kept] * distance[:, None]
    # intensity: labelled objects bright, clutter medium, ground dark; all noisy
    base = np.where(nearest < len(boxes), 0.6, np.where(nearest < len(surfaces), 0.35, 0.1))
    intensity = np.clip(base + rng.normal(0, 0.08, len(base)), 0, 1)
    points = np.concatenate([xyz, intensity[:, None], np.zeros((len(xyz), 1))], axis=1)
    num_points = np.bincount(nearest[nearest < len(boxes)], minlength=len(boxes))
    return {
        'points': points.astype(np.float32),
        'boxes': boxes.astype(np.float32),
        'labels': np.array(labels, np.int64),
        'num_points': num_points.astype(np.int64),
        'velocities': np.zeros((len(boxes), 2), np.float32),
    }


def scene_info(index: int, lidar_path: str, scene: Dict) -> dict:
    """One entry of an mmdet3d v2 info ``data_list``."""
    instances = [{
        'bbox_3d': box.tolist(),
        'bbox_label_3d': int(label),
        'velocity': velocity.tolist(),
        'num_lidar_pts': int(count),
        'bbox_3d_isvalid': bool(count > 0),
    } for box, label, velocity, count in zip(scene['boxes'], scene['labels'], scene['velocities'],
                                             scene['num_points'])]
    return {
        'sample_idx': index,
        'token': f'{index:06d}',
        'lidar_points': {
            'num_pts_feats': NUM_POINT_FEATURES,
            'lidar_path': lidar_path
        },
        'instances': instances,
    }


def write_dataset(root: str,
                  splits: Dict[str, int],
                  seed: int = 0,
                  config: SceneConfig = SceneConfig(),
                  only: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Write ``root/points/NNNNNN.bin`` and ``root/infos_<split>.pkl`` for each split.

    Args:
        splits (dict): ``{split name: number of scenes}``, e.g. ``{'train': 200, 'val': 50}``;
            scenes are numbered across splits, so splits never share a scene.
        only (sequence of str, optional): Write only these splits (the others keep their
            numbers, so a split added later never changes the scenes of the earlier ones).

    Returns:
        dict: ``{split: info file path}`` of the splits written.
    """
    os.makedirs(osp.join(root, 'points'), exist_ok=True)
    info_files, index = {}, 0
    for split, count in splits.items():
        if only is not None and split not in only:
            index += count
            continue
        data_list = []
        for _ in range(count):
            scene = generate_scene(np.random.default_rng([seed, index]), config)
            file_name = f'{index:06d}.bin'
            write_bytes_atomic(osp.join(root, 'points', file_name), scene['points'].tobytes())
            data_list.append(scene_info(index, file_name, scene))
            index += 1
        infos = {
            'metainfo': {
                'categories': {
                    name: i
                    for i, name in enumerate(CLASSES)
                },
                'dataset': 'synthetic_lidar',
                'info_version': '1.1'
            },
            'data_list': data_list,
        }
        info_files[split] = osp.join(root, f'infos_{split}.pkl')
        write_bytes_atomic(info_files[split], pickle.dumps(infos))
    return info_files
