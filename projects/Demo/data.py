"""Generated images of four shape classes, deterministic from a seed."""
import numpy as np
import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset

CLASSES = ('disc', 'square', 'ring', 'cross', 'horizontal bar', 'vertical bar')


def draw_shape(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """One (3, size, size) float32 image in [0, 1]: a coloured shape of class ``label`` on a
    noisy gradient background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    background = rng.uniform(0.0, 0.5) + rng.uniform(-0.2, 0.2) * (xx if rng.random() < 0.5 else yy)
    image = np.repeat(background[None], 3, axis=0)
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    extent = rng.uniform(0.08, 0.2)
    radius2 = (yy - cy)**2 + (xx - cx)**2
    if label == 0:
        mask = radius2 < extent**2
    elif label == 1:
        mask = (abs(yy - cy) < extent * 0.85) & (abs(xx - cx) < extent * 0.85)
    elif label == 2:
        mask = (radius2 < extent**2) & (radius2 > (0.55 * extent)**2)
    elif label == 3:
        mask = ((abs(yy - cy) < extent * 0.25) |
                (abs(xx - cx) < extent * 0.25)) & (abs(yy - cy) < extent) & (
                    abs(xx - cx) < extent)
    elif label == 4:
        mask = (abs(yy - cy) < extent * 0.3) & (abs(xx - cx) < extent * 1.6)
    else:
        mask = (abs(yy - cy) < extent * 1.6) & (abs(xx - cx) < extent * 0.3)
    colour = rng.uniform(0.3, 1.0, size=3).astype(np.float32)
    image[:, mask] = colour[:, None]
    image += rng.normal(0, 0.08, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32)


@DATASETS.register_module()
class SyntheticShapes(Dataset):
    """``num_samples`` images with balanced labels; item ``i`` is always the same image.

    Items are dicts ``{'inputs': (3, size, size) float tensor in [0, 1], 'labels': int}``.

    Args:
        num_samples (int): Dataset length. Defaults to 512.
        size (int): Image side in pixels. Defaults to 32.
        seed (int): Seed of the whole set. Defaults to 0.
    """

    def __init__(self, num_samples: int = 512, size: int = 32, seed: int = 0):
        self.num_samples = num_samples
        self.size = size
        self.seed = seed

    metainfo = {'classes': CLASSES}

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(
                f'SyntheticShapes index {index} out of range 0..{self.num_samples - 1}')
        rng = np.random.default_rng([self.seed, index])
        label = index % len(CLASSES)
        return {'inputs': torch.from_numpy(draw_shape(rng, label, self.size)), 'labels': label}
