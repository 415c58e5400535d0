"""SceneSegDataset: images and colour-coded masks in the upstream layout, several datasets."""
import logging
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.registry import DATASETS
from mmengine.structures import BaseDataElement
from PIL import Image
from torch.utils.data import Dataset

from .layout import CLASSES, DATASET_CROPS, colours_to_classes, dataset_folder, split_files

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


@DATASETS.register_module()
class SceneSegDataset(Dataset):
    """Samples ``{'inputs': (3, H, W) uint8 RGB, 'data_samples': BaseDataElement}`` (``gt_mask``
    (H, W) int64; metainfo ``dataset``, ``image_path``), cropped per dataset then resized
    (images bilinear, masks nearest). Mask colours outside the table become 255 (ignored by the
    loss and the metric); their pixels are counted per file (``unknown_colour_pixels``) and logged.

    Args:
        data_root (str): Folder holding one folder per dataset.
        datasets (sequence of str): Dataset folder names, e.g. ``['ACDC', 'comma10k']``.
        split (str): 'train', 'val' (every 10th file) or 'all'.
        image_size (tuple): (H, W) after the resize. Defaults to upstream's (320, 640).
        crops (dict, optional): ``{dataset: (left, top, right, bottom) or None}`` overriding the
            upstream crops (``DATASET_CROPS``); datasets in neither are not cropped.
    """

    def __init__(self,
                 data_root: str,
                 datasets: Sequence[str],
                 split: str = 'train',
                 image_size: Tuple[int, int] = (320, 640),
                 crops: Optional[Dict[str, Optional[Sequence[int]]]] = None):
        if not datasets:
            raise ValueError('SceneSegDataset: no dataset named in `datasets`')
        self.image_size = tuple(image_size)
        self.crops = dict(crops or {})
        self.samples = []  # (dataset, image path, mask path)
        for name in datasets:
            folder = dataset_folder(data_root, name)
            images = [
                f for f in os.listdir(osp.join(folder, 'images'))
                if f.lower().endswith(IMAGE_SUFFIXES)
            ]
            for file_name in split_files(images, split):
                stem = osp.splitext(file_name)[0]
                mask = osp.join(folder, 'gt_masks', f'{stem}.png')
                if not osp.isfile(mask):
                    raise FileNotFoundError(
                        f'image {osp.join(folder, "images", file_name)} has no mask {mask}')
                self.samples.append((name, osp.join(folder, 'images', file_name), mask))
        if not self.samples:
            raise ValueError(f'SceneSegDataset: no {split} images in {list(datasets)} under '
                             f'{data_root}')
        self.unknown_colour_pixels: Dict[str, int] = {}
        self.metainfo = {'classes': CLASSES, 'datasets': list(datasets)}

    def __len__(self) -> int:
        return len(self.samples)

    def _crop_box(self, dataset: str, width: int, height: int):
        if dataset in self.crops:
            box = self.crops[dataset]
            return tuple(box) if box is not None else None
        crop = DATASET_CROPS.get(dataset)
        return crop(width, height) if crop is not None else None

    def _load(self, path: str, dataset: str, resample) -> np.ndarray:
        with Image.open(path) as image:
            image = image.convert('RGB')
            box = self._crop_box(dataset, *image.size)
            if box is not None:
                image = image.crop(box)
            height, width = self.image_size
            return np.asarray(image.resize((width, height), resample))

    def __getitem__(self, index: int) -> dict:
        dataset, image_path, mask_path = self.samples[index]
        image = self._load(image_path, dataset, Image.BILINEAR)
        mask, unknown = colours_to_classes(self._load(mask_path, dataset, Image.NEAREST))
        if unknown:
            if mask_path not in self.unknown_colour_pixels:
                logger.warning('%s: %d pixels of colours outside the SceneSeg table, ignored',
                               mask_path, unknown)
            self.unknown_colour_pixels[mask_path] = unknown
        sample = BaseDataElement(metainfo=dict(dataset=dataset, image_path=image_path))
        sample.gt_mask = torch.from_numpy(mask.astype(np.int64))
        return {
            'inputs': torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            'data_samples': sample
        }
