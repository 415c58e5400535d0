import numpy as np
import torch

from deployment import OnnxRuntimeModel, export_onnx
from quantization import CalibrationManager, QuantRecipe


def test_unfused_session_runs_the_graph_as_written(tmp_path):
    """fuse=False: ONNX Runtime runs each Q/DQ as its own float op, so a Q/DQ network gives
    PyTorch fake-quant's outputs up to float summation order (inputs within amax)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3,
                                                                              padding=1)).eval()
    QuantRecipe().apply(model)
    x = torch.randn(2, 3, 12, 12)
    CalibrationManager(model, progress=False).calibrate([x], 1, 'max')
    path = export_onnx(model, (x, ), str(tmp_path / 'qdq.onnx'), ['inputs'], ['outputs'])
    unfused = OnnxRuntimeModel(path, fuse=False).run({'inputs': x.numpy()})['outputs']
    with torch.no_grad():
        np.testing.assert_allclose(unfused, model(x).numpy(), atol=1e-5)
