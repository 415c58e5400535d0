"""SceneSeg's layout, colours, crops and split; the generator; the upstream metric by hand."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from projects.SceneSeg import SceneSegDataset, SceneSegIoU
from projects.SceneSeg.data.layout import (COLOUR_TO_CLASS, IGNORE_INDEX, colours_to_classes,
                                           split_files)
from projects.SceneSeg.data.synthetic_roads import STYLES, synthetic_crops, write_datasets


def write_pair(folder, name, image, mask):
    for sub, array in (('images', image), ('gt_masks', mask)):
        os.makedirs(folder / sub, exist_ok=True)
        Image.fromarray(array).save(folder / sub / name)


def test_colours_map_to_classes_and_unknown_are_counted():
    rgb = np.array([[list(c) for c in COLOUR_TO_CLASS] + [[1, 2, 3]]], np.uint8)
    classes, unknown = colours_to_classes(rgb)
    assert classes[0, :-1].tolist() == list(COLOUR_TO_CLASS.values())
    assert classes[0, -1] == IGNORE_INDEX and unknown == 1


def test_validation_split_is_every_tenth_sorted_file():
    names = [f'{i}.png' for i in range(25)]
    ordered = sorted(names)
    assert split_files(names, 'val') == [ordered[9], ordered[19]]
    assert len(split_files(names, 'train')) == 23


def test_dataset_nesting_crop_resize_and_bad_input(tmp_path, caplog):
    road = np.array(list(COLOUR_TO_CLASS)[-1], np.uint8)
    image = np.zeros((100, 200, 3), np.uint8)
    mask = np.zeros((100, 200, 3), np.uint8)
    mask[:70] = road  # comma10k's crop keeps the top 70 %: only road remains
    mask[90:, :10] = (1, 2, 3)  # unknown colour, cropped away
    for i in range(10):
        write_pair(tmp_path / 'comma10k' / 'comma10k', f'{i}.png', image, mask)
    dataset = SceneSegDataset(str(tmp_path), ['comma10k'], 'val', image_size=(16, 32))
    assert len(dataset) == 1  # nested layout found, every 10th file
    sample = dataset[0]
    assert sample['inputs'].shape == (3, 16, 32) and sample['inputs'].dtype == torch.uint8
    assert (sample['data_samples'].gt_mask
            == 2).all() and sample['data_samples'].dataset == 'comma10k'
    uncropped = SceneSegDataset(
        str(tmp_path), ['comma10k'], 'val', image_size=(20, 40), crops={'comma10k': None})
    gt = uncropped[0]['data_samples'].gt_mask
    assert (gt == IGNORE_INDEX).sum() > 0 and uncropped.unknown_colour_pixels
    assert 'colours outside the SceneSeg table' in caplog.text
    os.remove(tmp_path / 'comma10k' / 'comma10k' / 'gt_masks' / '3.png')
    with pytest.raises(FileNotFoundError, match=r'images/3.png has no mask .*gt_masks/3.png'):
        SceneSegDataset(str(tmp_path), ['comma10k'], 'train')
    with pytest.raises(FileNotFoundError, match="dataset 'ACDC'"):
        SceneSegDataset(str(tmp_path), ['ACDC'], 'train')


def test_metric_matches_upstream_formula_by_hand():
    gt = torch.tensor([[0, 0, 1, 2], [2, 2, 2, IGNORE_INDEX]])
    pred = torch.tensor([[0, 1, 1, 2], [2, 2, 0, 1]])
    metric = SceneSegIoU()
    metric.dataset_meta = {'classes': ('background', 'foreground', 'road')}
    metric.process({}, [dict(pred_mask=pred, gt_mask=gt, dataset='a')])
    metric.process({}, [dict(pred_mask=gt.clamp(max=2), gt_mask=gt, dataset='b')])
    result = metric.compute_metrics(metric.results)
    # image a (ignored pixel left out): background I=1 U=3, foreground I=1 U=2, road I=3 U=4
    a = {'background': 2 / 4, 'foreground': 2 / 3, 'road': 4 / 5, 'overall': 6 / 10}
    for key, value in a.items():
        assert result[f'a/{key}'] == pytest.approx(100 * value)
    assert result['a/class_average'] == pytest.approx(100 * (2 / 4 + 2 / 3 + 4 / 5) / 3)
    assert result['b/overall'] == pytest.approx(100.0)
    assert result['pooled/road'] == pytest.approx(100 * (4 / 5 + 1) / 2)
    # dataset level: road I = 3 + 4, U = 4 + 4
    assert result['pooled/dataset_level_road'] == pytest.approx(100 * 7 / 8)


def test_generator_is_deterministic_and_uses_the_colour_table(tmp_path):
    first = write_datasets(str(tmp_path / 'a'), {name: 2 for name in STYLES}, seed=3)
    second = write_datasets(str(tmp_path / 'b'), {name: 2 for name in STYLES}, seed=3)
    for name in STYLES:
        for sub in ('images', 'gt_masks'):
            a = np.asarray(Image.open(f'{first[name]}/{sub}/000001.png'))
            b = np.asarray(Image.open(f'{second[name]}/{sub}/000001.png'))
            assert np.array_equal(a, b)
        mask = np.asarray(Image.open(f'{first[name]}/gt_masks/000001.png').convert('RGB'))
        classes, unknown = colours_to_classes(mask)
        assert unknown == 0 and {0, 2} <= set(np.unique(classes).tolist())
    assert synthetic_crops((240, 480)) == {'synthetic_rain_hood': (0, 0, 479, 168)}
