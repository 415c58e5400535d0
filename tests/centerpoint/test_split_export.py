"""CenterPoint's two-graph ONNX split against PyTorch, float and quantized (Q/DQ)."""
import numpy as np
import torch
from mmengine.runner import Runner

from deployment import OnnxRuntimeModel
from projects.CenterPoint.quantization import centerpoint_recipe
from projects.CenterPoint.deploy.split import (HEAD_OUTPUTS, SplitCenterPoint, export_split,
                                               torch_parts)
from quantization import CalibrationManager


def onnx_split(model, paths):
    return SplitCenterPoint(model, {graph: OnnxRuntimeModel(p).run for graph, p in paths.items()})


def boxes_of(samples):
    return [s.pred_instances_3d.bboxes_3d.tensor.numpy() for s in samples]


def test_split_matches_pytorch_float_and_quantized(tiny, tmp_path):
    from mmdet3d.registry import MODELS
    model = MODELS.build(tiny['cfg'].model)
    model.load_state_dict(torch.load(tiny['checkpoint'], weights_only=True)['state_dict'])
    model.eval()
    batch = next(iter(Runner.build_dataloader(tiny['cfg'].val_dataloader, seed=0)))
    with torch.no_grad():
        reference = model.test_step(batch)
    in_torch = SplitCenterPoint(model, torch_parts(model)).test_step(batch)
    for expected, got in zip(boxes_of(reference), boxes_of(in_torch)):
        np.testing.assert_array_equal(expected, got)
    float_paths = export_split(model, batch, str(tmp_path), 'float')
    for expected, got in zip(
            boxes_of(reference), boxes_of(onnx_split(model, float_paths).test_step(batch))):
        np.testing.assert_allclose(got, expected, atol=1e-3)

    centerpoint_recipe(model).apply(model)
    loader = Runner.build_dataloader(tiny['cfg'].train_dataloader, seed=0)
    CalibrationManager(model, progress=False).calibrate(loader, 2, 'mse')
    quant_paths = export_split(model, batch, str(tmp_path), 'int8')
    for path in quant_paths.values():
        import onnx
        assert any(n.op_type == 'QuantizeLinear' for n in onnx.load(path).graph.node)
    # Raw head maps: ONNX Runtime vs PyTorch fake-quant on the same canvas.
    run_rest = torch_parts(model)['pts_backbone_neck_head']
    head_onnx = OnnxRuntimeModel(quant_paths['pts_backbone_neck_head'])
    height, width = tiny['cfg'].model.pts_middle_encoder.output_shape
    canvas = np.random.default_rng(0).random((2, 32, height, width), np.float32) * (
        np.random.default_rng(1).random((2, 1, height, width)) < 0.1)
    torch_maps = run_rest({'bev_canvas': canvas})
    onnx_maps = head_onnx.run({'bev_canvas': canvas})
    assert list(onnx_maps) == list(HEAD_OUTPUTS)
    for name in HEAD_OUTPUTS:
        expected, got = torch_maps[name], onnx_maps[name]
        cosine = (expected * got).sum() / np.linalg.norm(expected) / np.linalg.norm(got)
        assert cosine > 0.999, name
