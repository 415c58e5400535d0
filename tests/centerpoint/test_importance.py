"""CenterPoint's importance weights for the per-layer amax search and its head distance for the
learned ranges, against the head's outputs computed through mmdet3d's own calls (data
preprocessor, ``extract_feat``, the head) and by hand."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from projects.CenterPoint.quantization.importance import head_distance, object_importance
from quantization.calibration import default_forward
from quantization.range_learning import module_output


def test_object_importance_is_the_largest_heatmap_score_of_every_task(tiny):
    from mmdet3d.registry import MODELS
    init_default_scope('mmdet3d')  # earlier tests may have left another scope current
    model = MODELS.build(tiny['cfg'].model)
    model.load_state_dict(torch.load(tiny['checkpoint'], weights_only=True)['state_dict'])
    model.eval()
    batch = next(iter(Runner.build_dataloader(tiny['cfg'].val_dataloader, seed=0)))
    weights = object_importance(model, batch)
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        metas = [sample.metainfo for sample in data['data_samples']]
        _, features = model.extract_feat(data['inputs'], metas)  # (image, points)
        per_task = [outputs[0]['heatmap'].sigmoid() for outputs in model.pts_bbox_head(features)]
    expected = torch.cat(per_task, dim=1).amax(1, keepdim=True)
    assert weights.shape == (len(metas), 1, *per_task[0].shape[-2:])
    torch.testing.assert_close(weights, expected, rtol=0, atol=1e-6)
    assert 0 <= float(weights.min()) and float(weights.max()) <= 1


def test_module_output_is_the_heads_output_and_head_distance_weights_the_box_maps(tiny):
    from mmdet3d.registry import MODELS
    init_default_scope('mmdet3d')
    model = MODELS.build(tiny['cfg'].model)
    model.load_state_dict(torch.load(tiny['checkpoint'], weights_only=True)['state_dict'])
    model.eval()
    batch = next(iter(Runner.build_dataloader(tiny['cfg'].val_dataloader, seed=0)))
    with torch.no_grad():
        captured = module_output(model, model.pts_bbox_head, batch, default_forward)
        data = model.data_preprocessor(batch, False)
        metas = [sample.metainfo for sample in data['data_samples']]
        _, features = model.extract_feat(data['inputs'], metas)
        expected = model.pts_bbox_head(features)
    assert len(captured) == len(expected)
    for got, want in zip(captured, expected):
        for key in want[0]:
            torch.testing.assert_close(got[0][key], want[0][key], rtol=0, atol=0)
    assert float(head_distance(captured, expected)) == 0


def test_head_distance_by_hand():
    # one task, two positions: the float model is sure of an object at the first (score 0.5)
    # and of nothing at the second (score ~0)
    want = {'heatmap': torch.tensor([0.0, -30.0]).reshape(1, 1, 1, 2),
            'reg': torch.tensor([[1.0, 1.0], [2.0, 2.0]]).reshape(1, 2, 1, 2)}
    # a box error where nothing is found costs nothing
    far = dict(want, reg=want['reg'] + torch.tensor([0.0, 5.0]).reshape(1, 1, 1, 2))
    assert float(head_distance(([far], ), ([want], ))) == pytest.approx(0, abs=1e-9)
    # a box error of 1 in both reg channels at the object (values 1 and 2 there):
    # reg's term 0.5 * (1 + 1) / (0.5 * (1 + 4) + ~0) = 0.4, the heatmap's 0
    near = dict(want, reg=want['reg'] + torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2))
    assert float(head_distance(([near], ), ([want], ))) == pytest.approx(0.4 / 2, rel=1e-6)
    # a false positive on the background counts: scores 0.5 and 0.5 against 0.5 and 0;
    # heatmap term mean((0, 0.5)**2) / mean((0.5, 0)**2) = 1
    ghost = dict(want, heatmap=torch.zeros(1, 1, 1, 2))
    assert float(head_distance(([ghost], ), ([want], ))) == pytest.approx(1 / 2, rel=1e-6)
