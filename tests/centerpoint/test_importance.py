"""CenterPoint's importance weights for the per-layer amax search, against the head's heatmaps
computed through mmdet3d's own calls (data preprocessor, ``extract_feat``, the head)."""
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from projects.CenterPoint.quantization.importance import object_importance


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
