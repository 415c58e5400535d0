"""Synthetic road scenes in SceneSeg's layout and colour code (``<root>/<dataset>/{images,
gt_masks}/NNNNNN.png``), several "datasets" of different styles, deterministic from a seed.

A scene: sky above a horizon, buildings and vegetation (background objects), a road in
perspective towards a vanishing point with road-edge delimiters and dashed lane marks, vehicles
(small and large) and pedestrians sized by their distance, then the style's lighting, tint and
noise. ``hood`` styles add a car bonnet over the bottom 30 % (unlabelled), which the dataset's
crop removes, as comma10k's crop does. Masks are painted with the same shapes as the image.
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
from PIL import Image

from quantization.fileio import atomic_output
from .layout import (BACKGROUND, DATASET_CROPS, DELIMITER, LARGE_VEHICLE, PERSON, ROAD, SKY,
                     SMALL_VEHICLE, UNLABELLED)


@dataclass(frozen=True)
class Style:
    """Lighting of one synthetic dataset: brightness gain, RGB tint, noise std, rain, bonnet."""
    gain: float = 1.0
    tint: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 6.0
    rain: bool = False
    hood: bool = False


STYLES: Dict[str, Style] = {
    'synthetic_day': Style(),
    'synthetic_dusk': Style(gain=0.55, tint=(1.15, 0.9, 0.8), noise=9.0),
    'synthetic_rain_hood': Style(gain=0.8, tint=(0.9, 0.95, 1.1), noise=8.0, rain=True, hood=True),
}


def synthetic_crops(size: Tuple[int, int]) -> Dict[str, Tuple[int, int, int, int]]:
    """Crop boxes of the generated datasets for images of ``size`` (H, W): the bonnet styles
    are cropped as upstream crops comma10k (the top 70 %)."""
    height, width = size
    return {
        name: DATASET_CROPS['comma10k'](width, height)
        for name, style in STYLES.items() if style.hood
    }


class Canvas:
    """An RGB image and its colour-coded mask, painted together."""

    def __init__(self, height: int, width: int):
        self.image = np.zeros((height, width, 3), np.float32)
        self.mask = np.zeros((height, width, 3), np.uint8)
        self.rows, self.cols = np.mgrid[0:height, 0:width]

    def paint(self, where: np.ndarray, colour, label):
        self.image[where] = colour
        self.mask[where] = label


def _road_edges(rows, vanish_x, horizon, left_bottom, right_bottom, height):
    """x of the road's left and right edges at each row (linear towards the vanishing point)."""
    t = np.clip((rows - horizon) / max(height - 1 - horizon, 1), 0, 1)
    return vanish_x + (left_bottom - vanish_x) * t, vanish_x + (right_bottom - vanish_x) * t


def render_scene(rng: np.random.Generator, size: Tuple[int, int], style: Style):
    """One (H, W, 3) uint8 image and its (H, W, 3) uint8 colour mask."""
    height, width = size
    canvas = Canvas(height, width)
    rows, cols = canvas.rows, canvas.cols
    horizon = int(height * rng.uniform(0.35, 0.5))
    sky_colour = np.array([110, 160, 230]) * rng.uniform(0.8, 1.1)
    canvas.paint(rows < horizon, sky_colour, SKY)
    canvas.image[rows < horizon] += ((rows[rows < horizon] / max(horizon, 1))[:, None] * 40)
    ground = np.array([70, 110, 60]) * rng.uniform(0.7, 1.2)
    canvas.paint(rows >= horizon, ground, BACKGROUND)
    for _ in range(rng.integers(2, 6)):  # buildings on the horizon
        left = rng.uniform(-0.1, 0.9) * width
        right = left + rng.uniform(0.08, 0.3) * width
        top = horizon - rng.uniform(0.05, 0.3) * height
        where = (cols >= left) & (cols < right) & (rows >= top) & (rows < horizon)
        canvas.paint(where, rng.uniform(60, 200, 3), BACKGROUND)

    vanish_x = width * rng.uniform(0.35, 0.65)
    left_bottom = width * rng.uniform(-0.4, 0.15)
    right_bottom = width * rng.uniform(0.85, 1.4)
    left, right = _road_edges(rows, vanish_x, horizon, left_bottom, right_bottom, height)
    below = rows >= horizon
    road = below & (cols >= left) & (cols <= right)
    canvas.paint(road, np.array([95, 95, 100]) * rng.uniform(0.7, 1.2), ROAD)
    edge_width = 1.0 + 6.0 * (rows - horizon) / max(height - horizon, 1)
    curb = below & ~road & ((np.abs(cols - left) < edge_width) |
                            (np.abs(cols - right) < edge_width))
    canvas.paint(curb, (200, 200, 190), DELIMITER)
    centre = (left + right) / 2
    dashes = road & (np.abs(cols - centre) < edge_width / 2) & ((rows // 12) % 2 == 0)
    canvas.image[dashes] = (235, 235, 235)  # lane marks are road

    objects = []
    for _ in range(rng.integers(1, 7)):  # vehicles and pedestrians, far to near
        depth = rng.uniform(0.05, 1.0)  # 0 at the horizon, 1 at the bottom row
        kind = rng.choice(['small', 'large', 'person'], p=[0.5, 0.25, 0.25])
        objects.append((depth, kind))
    for depth, kind in sorted(objects):
        bottom = horizon + depth * (height - 1 - horizon)
        row_left, row_right = _road_edges(
            np.array(bottom), vanish_x, horizon, left_bottom, right_bottom, height)
        road_width = max(float(row_right - row_left), 4.0)
        scale = road_width / 3.0  # lane-width units
        if kind == 'person':
            obj_w, obj_h = 0.18 * scale, 0.55 * scale
            x = rng.uniform(row_left - 0.3 * road_width, row_right + 0.3 * road_width - obj_w)
            colour, label = rng.uniform(30, 220, 3), PERSON
        else:
            obj_w = (0.8 if kind == 'small' else 1.0) * scale
            obj_h = obj_w * (0.75 if kind == 'small' else 1.1)
            x = rng.uniform(row_left, row_right - obj_w)
            colour = rng.uniform(20, 240, 3)
            label = SMALL_VEHICLE if kind == 'small' else LARGE_VEHICLE
        body = (cols >= x) & (cols < x + obj_w) & (rows >= bottom - obj_h) & (rows < bottom)
        canvas.paint(body, colour, label)
        if kind != 'person':  # windows
            window = body & (rows < bottom - 0.6 * obj_h) & (cols >= x + 0.1 * obj_w) & (
                cols < x + 0.9 * obj_w)
            canvas.image[window] = colour * 0.3 + 40

    if style.hood:
        hood = rows >= 0.7 * height + 0.05 * height * np.cos((cols / width - 0.5) * np.pi)
        canvas.paint(hood, (25, 25, 30), UNLABELLED)
    image = canvas.image * style.gain * np.array(style.tint, np.float32)
    if style.rain:
        streaks = rng.random((height, width)) < 0.004
        image[np.roll(streaks, 1, 0) | streaks] += 60
    image += rng.normal(0, style.noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), canvas.mask


def _save_png(array: np.ndarray, path: str):
    with atomic_output(path, '.png') as tmp_path:
        Image.fromarray(array).save(tmp_path)


def write_datasets(root: str,
                   counts: Dict[str, int],
                   seed: int = 0,
                   size: Tuple[int, int] = (240, 480)) -> Dict[str, str]:
    """Write ``counts[name]`` scenes of each style in ``STYLES``; returns their folders.

    Scene ``i`` of dataset ``name`` is a function of ``(seed, position of name in STYLES, i)``.
    """
    folders = {}
    for name, count in counts.items():
        if name not in STYLES:
            raise KeyError(f'unknown synthetic dataset {name!r}; known: {sorted(STYLES)}')
        folder = osp.join(root, name)
        for sub in ('images', 'gt_masks'):
            os.makedirs(osp.join(folder, sub), exist_ok=True)
        style_index = list(STYLES).index(name)
        for index in range(count):
            image, mask = render_scene(
                np.random.default_rng([seed, style_index, index]), size, STYLES[name])
            _save_png(image, osp.join(folder, 'images', f'{index:06d}.png'))
            _save_png(mask, osp.join(folder, 'gt_masks', f'{index:06d}.png'))
        folders[name] = folder
    return folders
