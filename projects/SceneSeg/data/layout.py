"""SceneSeg's on-disk conventions: mask colours, per-dataset crops, the validation split.

Layout: ``root/<DATASET>/images/<N>.png`` and ``root/<DATASET>/gt_masks/<N>.png`` (same file
name), or one more level, ``root/<DATASET>/<DATASET>/images/``, as the seeds' QAT tools use.
"""
import os.path as osp
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

CLASSES = ('background', 'foreground', 'road')
IGNORE_INDEX = 255  # mask pixels of a colour outside COLOUR_TO_CLASS
#: mask colours (RGB): sky, background objects, road-edge delimiter, unlabelled (class 0);
#: vulnerable living, small / large mobile vehicle, foreground objects (class 1); road (class 2)
SKY, BACKGROUND, DELIMITER, UNLABELLED = (61, 184, 255), (61, 93, 255), (216, 255, 61), (0, 0, 0)
PERSON, SMALL_VEHICLE, LARGE_VEHICLE = (255, 61, 61), (255, 190, 61), (255, 116, 61)
FOREGROUND, ROAD = (255, 28, 145), (0, 255, 220)
#: RGB colour code of the masks -> class index
COLOUR_TO_CLASS: Dict[Tuple[int, int, int], int] = {
    **dict.fromkeys((SKY, BACKGROUND, DELIMITER, UNLABELLED), 0),
    **dict.fromkeys((PERSON, SMALL_VEHICLE, LARGE_VEHICLE, FOREGROUND), 1),
    ROAD: 2,
}
Box = Tuple[int, int, int, int]
#: region of interest cropped before the resize (PIL box: left, top, right, bottom)
DATASET_CROPS: Dict[str, Optional[Callable[[int, int], Box]]] = {
    'ACDC': lambda w, h: (0, 0, 1919, 990),
    'IDDAW': lambda w, h: (0, 476, 2047, 1500),
    'MUSES': lambda w, h: (0, 0, 1919, 918),
    'comma10k': lambda w, h: (0, 0, w - 1, int(0.7 * h)),
    'BDD100K': lambda w, h: (0, 0, 1000, 500),
    'Mapillary_Vistas': None,
}


def encode_colours(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colours -> (H, W) int64 codes ``r << 16 | g << 8 | b``."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_CODES = np.array([(r << 16) | (g << 8) | b for r, g, b in COLOUR_TO_CLASS], np.int64)
_ORDER = np.argsort(_CODES)
_SORTED_CODES = _CODES[_ORDER]
_SORTED_CLASSES = np.array(list(COLOUR_TO_CLASS.values()), np.uint8)[_ORDER]


def colours_to_classes(rgb: np.ndarray) -> Tuple[np.ndarray, int]:
    """(H, W, 3) RGB mask -> ((H, W) uint8 classes, count of unknown-colour pixels).

    Unknown colours become :data:`IGNORE_INDEX`.
    """
    codes = encode_colours(rgb)
    position = np.clip(np.searchsorted(_SORTED_CODES, codes), 0, len(_SORTED_CODES) - 1)
    known = _SORTED_CODES[position] == codes
    classes = np.where(known, _SORTED_CLASSES[position], IGNORE_INDEX).astype(np.uint8)
    return classes, int((~known).sum())


def dataset_folder(root: str, name: str) -> str:
    """``root/<name>`` or the nested ``root/<name>/<name>``, whichever holds ``images/``."""
    for folder in (osp.join(root, name), osp.join(root, name, name)):
        if osp.isdir(osp.join(folder, 'images')):
            return folder
    raise FileNotFoundError(f'dataset {name!r}: neither {root}/{name}/images nor '
                            f'{root}/{name}/{name}/images exists')


def split_files(file_names: List[str], split: str) -> List[str]:
    """Every 10th file of the sorted list is validation (``(i + 1) % 10 == 0``)."""
    if split not in ('train', 'val', 'all'):
        raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
    ordered = sorted(file_names)
    if split == 'all':
        return ordered
    return [f for i, f in enumerate(ordered) if ((i + 1) % 10 == 0) == (split == 'val')]
