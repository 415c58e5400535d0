import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest
import torch

from deployment import export_onnx
from deployment.graph_passes import constant_value, clean_up_onnx
from deployment.ort_runner import tensor_samples
from deployment.placement import (apply_placement, pre_activation_amax, pre_activation_range,
                                  uint8_grid, write_target_onnx)
from projects.Demo import DemoNet
from quantization import CalibrationManager, QuantRecipe


def as_written(path: str) -> ort.InferenceSession:
    """ONNX Runtime without graph optimisations: Q/DQ run as float ops, the exact arithmetic
    of the graph on any CPU (the INT8 kernels of fused sessions saturate on CPUs without VNNI,
    deployment.cpu_int8), so two placements are compared as written."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


@pytest.fixture(scope='module')
def tensorrt_graph_path(tmp_path_factory):
    torch.manual_seed(0)
    model = DemoNet().eval()
    QuantRecipe().apply(model)
    CalibrationManager(model, progress=False).calibrate([torch.rand(8, 3, 32, 32)], 1, 'mse')
    folder = tmp_path_factory.mktemp('placement')
    raw, clean = str(folder / 'raw.onnx'), str(folder / 'trt.onnx')
    export_onnx(model, (torch.rand(2, 3, 32, 32), ), raw, ['inputs'], ['logits'], dynamo=False)
    clean_up_onnx(raw, clean)
    return clean


def test_tensorrt_target_leaves_graph_as_exported(tensorrt_graph_path):
    graph = gs.import_onnx(onnx.load(tensorrt_graph_path))
    assert apply_placement(graph, 'tensorrt') == 0
    with pytest.raises(ValueError, match="unknown placement target 'tflite'"):
        apply_placement(graph, 'tflite')


def test_onnxruntime_target_uint8_activations_same_results(tensorrt_graph_path, tmp_path):
    graph = gs.import_onnx(onnx.load(tensorrt_graph_path))
    before = {
        n.name: (float(np.max(constant_value(n.inputs[1]))),
                 n.inputs[0].inputs[0].op if n.inputs[0].inputs else 'input')
        for n in graph.nodes if n.op == 'QuantizeLinear'
    }
    assert apply_placement(graph, 'onnxruntime') > 0
    for node in graph.nodes:
        if node.op not in ('QuantizeLinear', 'DequantizeLinear'):
            continue
        zero_point = constant_value(node.inputs[2])
        if constant_value(node.inputs[0]) is not None:  # folded weights stay int8, symmetric
            assert zero_point.dtype == np.int8 and not zero_point.any()
            continue
        assert zero_point.dtype == np.uint8
        if node.op == 'QuantizeLinear' and node.name in before:
            scale, producer = before[node.name]
            new_scale = float(np.max(constant_value(node.inputs[1])))
            if producer == 'Relu':  # [0, amax] on 255 steps
                assert int(zero_point) == 0 and new_scale == pytest.approx(scale * 127 / 255)
            else:  # int8 zero-point 0 == uint8 zero-point 128 at the same scale
                assert int(zero_point) == 128 and new_scale >= scale
    path = str(tmp_path / 'ort.onnx')
    onnx.save(gs.export_onnx(graph), path)
    x = np.random.default_rng(0).random((2, 3, 32, 32), np.float32)
    reference = as_written(tensorrt_graph_path).run(None, {'inputs': x})[0]
    placed = as_written(path).run(None, {'inputs': x})[0]
    cosine = (reference * placed).sum() / np.linalg.norm(reference) / np.linalg.norm(placed)
    assert cosine > 0.9999


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('spatial_size_known', [True, False])
def test_deconvolution_rewrite_equals_conv_transpose(tmp_path, bias, spatial_size_known):
    """Both forms of the rewrite (channels-last where the input's H, W are known, else
    DepthToSpace) equal the ConvTranspose, on a batch of 2 and a non-square input."""
    from quantization import QuantConvTranspose2d
    from deployment.placement import deconvolution_to_depth_to_space
    torch.manual_seed(1)
    deconv = QuantConvTranspose2d(8, 6, 2, stride=2, bias=bias).eval()
    x = torch.randn(2, 8, 5, 7)
    CalibrationManager(deconv, progress=False).calibrate([x], 1, 'max')
    raw, clean = str(tmp_path / 'raw.onnx'), str(tmp_path / 'clean.onnx')
    export_onnx(deconv, (x, ), raw, ['x'], ['y'], dynamo=False)
    clean_up_onnx(raw, clean)
    graph = gs.import_onnx(onnx.load(clean))
    if not spatial_size_known:
        [deconv_node] = [n for n in graph.nodes if n.op == 'ConvTranspose']
        deconv_node.inputs[0].shape = None
    assert deconvolution_to_depth_to_space(graph) == 1
    ops = [n.op for n in graph.nodes]
    assert ops.count('ConvTranspose') == 0
    assert ops.count('DepthToSpace') == (0 if spatial_size_known else 1)
    assert ops.count('Transpose') == (3 if spatial_size_known else 0)
    rewritten = str(tmp_path / 'rewritten.onnx')
    onnx.save(gs.export_onnx(graph), rewritten)
    expected = ort.InferenceSession(clean).run(None, {'x': x.numpy()})[0]
    result = ort.InferenceSession(rewritten).run(None, {'x': x.numpy()})[0]
    np.testing.assert_allclose(result, expected, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(result, deconv(x).numpy(), atol=1e-5)


@pytest.mark.parametrize('activation', [torch.nn.SiLU, torch.nn.GELU])
def test_conv_before_silu_or_gelu_gets_an_output_quantizer(activation, tmp_path):
    """Conv -> SiLU/GELU -> QuantConv: the first Conv's output gets a Q/DQ pair clipping at the
    input the activation maps to the next quantizer's amax, so ONNX Runtime can fuse a
    QLinearConv; results stay close."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), activation(), torch.nn.Conv2d(8, 4, 3,
                                                                           padding=1)).eval()
    QuantRecipe().apply(model)
    images = torch.randn(4, 3, 16, 16)
    CalibrationManager(model, progress=False).calibrate([images], 1, 'max')
    raw, clean, placed = (str(tmp_path / f'{n}.onnx') for n in ('raw', 'clean', 'placed'))
    export_onnx(model, (images, ), raw, ['inputs'], ['outputs'])
    clean_up_onnx(raw, clean)
    graph = gs.import_onnx(onnx.load(clean))
    apply_placement(graph, 'onnxruntime')
    first_conv = [n for n in graph.nodes if n.op == 'Conv'][0]
    quantize = [c for c in first_conv.outputs[0].outputs if c.op == 'QuantizeLinear']
    assert len(quantize) == 1
    # The uint8 pair's top is where the activation reaches the quantizer's amax after it; at
    # its bottom the activation is back within half a step of 0.
    after_activation = model[2].input_quantizer.amax.item()
    scale = float(constant_value(quantize[0].inputs[1]))
    zero_point = int(constant_value(quantize[0].inputs[2]))
    assert constant_value(quantize[0].inputs[2]).dtype == np.uint8 and 0 < zero_point < 255
    top, bottom = scale * (255 - zero_point), -scale * zero_point
    with torch.no_grad():
        assert activation()(torch.tensor(top)).item() == pytest.approx(after_activation,
                                                                       rel=2e-2)
        clipped = abs(activation()(torch.tensor(bottom)).item())
        assert clipped == pytest.approx(scale / 2, rel=5e-2)
    onnx.save(gs.export_onnx(graph), placed)
    x = images.numpy()
    reference = as_written(clean).run(None, {'inputs': x})[0]
    result = as_written(placed).run(None, {'inputs': x})[0]
    cosine = (reference * result).sum() / np.linalg.norm(reference) / np.linalg.norm(result)
    assert cosine > 0.999


@pytest.mark.parametrize('gate,activation', [('Sigmoid', torch.nn.SiLU()),
                                             ('Erf', torch.nn.GELU())])
def test_pre_activation_amax_inverts_the_activation(gate, activation):
    for amax in (1e-3, 0.05, 1.0, 8.0):
        x = pre_activation_amax(amax, gate)
        assert activation(torch.tensor(x, dtype=torch.float64)).item() == pytest.approx(amax)
    assert pre_activation_amax(1e-3, gate) == pytest.approx(2e-3, rel=5e-3)  # x / 2 near 0
    assert pre_activation_amax(8.0, gate) == pytest.approx(8.0, rel=2e-3)  # identity far out


@pytest.mark.parametrize('gate,activation', [('Sigmoid', torch.nn.SiLU()),
                                             ('Erf', torch.nn.GELU())])
def test_pre_activation_range_clips_no_worse_than_it_rounds(gate, activation):
    """Brute force over the bottom: the chosen one is where the clipping error of the most
    negative inputs, ``|act(bottom)|``, equals half the step; a higher bottom clips worse."""
    for amax in (0.05, 1.0, 6.0):
        low, high = pre_activation_range(amax, gate)
        assert high == pre_activation_amax(amax, gate) and low < -1.0
        bottoms = torch.linspace(-1.5, -20.0, 2000, dtype=torch.float64)
        clip_error = activation(bottoms).abs()
        half_step = (high - bottoms) / 255 / 2
        balanced = bottoms[torch.argmin((clip_error - half_step).abs())].item()
        assert low == pytest.approx(balanced, abs=0.02)


def test_erf_gelu_becomes_onnxruntime_gelu(tmp_path):
    """The exported erf GELU (five nodes) becomes one com.microsoft.Gelu; ONNX Runtime's kernel
    matches torch's exact GELU."""
    from deployment.placement import fuse_erf_gelu
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.GELU(), torch.nn.GELU()).eval()
    x = torch.randn(2, 3, 8, 8) * 3
    path, fused_path = str(tmp_path / 'gelu.onnx'), str(tmp_path / 'fused.onnx')
    export_onnx(model, (x, ), path, ['x'], ['y'], dynamo=False)
    graph = gs.import_onnx(onnx.load(path))
    assert [n.op for n in graph.nodes].count('Erf') == 2
    assert fuse_erf_gelu(graph) == 2
    assert sorted(n.op for n in graph.nodes) == ['Conv', 'Gelu', 'Gelu']
    assert {n.domain for n in graph.nodes if n.op == 'Gelu'} == {'com.microsoft'}
    onnx.save(gs.export_onnx(graph), fused_path)
    result = ort.InferenceSession(fused_path).run(None, {'x': x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(result, model(x).numpy(), atol=1e-5)


def test_conv_with_float_output_gets_float_weights(tmp_path):
    """A quantized Conv whose consumer is left in float keeps its input Q/DQ; its INT8 weights
    become the float constant they dequantize to (same results), while a Conv followed by a
    quantizer keeps its weight DequantizeLinear."""
    from deployment.placement import dequantize_weights_of_float_convs
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.GELU(), torch.nn.Conv2d(8, 4, 1)).eval()
    QuantRecipe(skip_layers=['4']).apply(model)
    images = torch.randn(4, 3, 16, 16)
    CalibrationManager(model, progress=False).calibrate([images], 1, 'max')
    raw, clean, placed = (str(tmp_path / f'{n}.onnx') for n in ('raw', 'clean', 'placed'))
    export_onnx(model, (images, ), raw, ['inputs'], ['outputs'], dynamo=False)
    clean_up_onnx(raw, clean)
    graph = gs.import_onnx(onnx.load(clean))
    first, second, _ = [n for n in graph.nodes if n.op == 'Conv']
    weight_dq = second.inputs[1].inputs[0]
    expected_weight = (
        constant_value(weight_dq.inputs[0]).astype(np.float32) *
        constant_value(weight_dq.inputs[1]).reshape(-1, 1, 1, 1))
    assert dequantize_weights_of_float_convs(graph) == 1
    np.testing.assert_array_equal(constant_value(second.inputs[1]), expected_weight)
    assert first.inputs[1].inputs[0].op == 'DequantizeLinear'  # Relu -> Q: QLinearConv
    assert second.inputs[0].inputs[0].op == 'DequantizeLinear'  # the input stays INT8
    onnx.save(gs.export_onnx(graph), placed)
    x = images.numpy()
    reference = as_written(clean).run(None, {'inputs': x})[0]
    result = as_written(placed).run(None, {'inputs': x})[0]
    np.testing.assert_allclose(result, reference, atol=1e-5)


@pytest.mark.parametrize('gate,activation', [('Sigmoid', torch.nn.SiLU()),
                                             ('Erf', torch.nn.GELU())])
def test_pre_activation_range_on_samples_beats_the_data_free_bound(gate, activation):
    """A small amax over inputs that stay above -1: the data-free bottom (far below, for any
    input) wastes most of the grid; on the samples the bottom rises to their minimum and the
    activation's output error, computed here by hand on the written uint8 grid, falls. (The
    next quantizer clips the outputs at -amax, reached at about -0.2: the bottom need not go
    lower.)"""
    amax = 0.1
    samples = np.random.default_rng(0).uniform(-1.0, 0.3, 50000).astype(np.float32)
    bound, high = pre_activation_range(amax, gate)
    low, same_high = pre_activation_range(amax, gate, samples=samples)
    assert same_high == high and bound < -2.5 and -1.05 < low < -0.2

    def output_error(bottom):
        scale, zero_point = uint8_grid(bottom, high)
        grid = (np.clip(np.rint(samples / scale) + zero_point, 0, 255) - zero_point) * scale
        outputs = [activation(torch.from_numpy(v.astype(np.float32))).clamp(-amax, amax).numpy()
                   for v in (grid, samples)]
        return np.mean((outputs[0] - outputs[1])**2)

    assert output_error(low) < output_error(bound) / 20


def test_pre_activation_range_on_samples_keeps_a_far_tail():
    """Inputs far below the activation's minimum, whose outputs are about 0: a bottom at the
    samples' minimum or one near 0 (clipping them to a value far from 0) loses to one near
    the data-free bound."""
    rng = np.random.default_rng(1)
    samples = np.concatenate([rng.uniform(-12.0, -6.0, 30000),
                              rng.uniform(-0.2, 2.0, 30000)]).astype(np.float32)
    bound, high = pre_activation_range(1.0, 'Sigmoid')
    low, _ = pre_activation_range(1.0, 'Sigmoid', samples=samples)
    assert low < -3.0 and low >= bound


def test_tensor_samples_draws_the_intermediate_values(tmp_path):
    """The sampler's values are a subset of the tensor ONNX Runtime computes, drawn from every
    feed; below the limit, all of them."""
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.SiLU()).eval()
    path = str(tmp_path / 'conv.onnx')
    export_onnx(conv, (torch.rand(1, 3, 8, 8), ), path, ['inputs'], ['outputs'], dynamo=False)
    model = onnx.load(path)
    name = [n for n in model.graph.node if n.op_type == 'Conv'][0].output[0]
    feeds = [{'inputs': np.random.default_rng(i).random((1, 3, 8, 8), np.float32)}
             for i in range(2)]
    with torch.no_grad():
        expected = [conv[0](torch.from_numpy(f['inputs'])).numpy().reshape(-1) for f in feeds]
    every = tensor_samples(model, [name], feeds)[name]
    np.testing.assert_allclose(np.sort(every), np.sort(np.concatenate(expected)), atol=1e-5)
    some = tensor_samples(model, [name], feeds, per_tensor=100)[name]
    assert some.shape == (100, )
    for half, values in zip((some[:50], some[50:]), expected):
        assert np.abs(half[:, None] - values[None]).min(axis=1).max() < 1e-5


def test_onnxruntime_target_ranges_from_calibration_feeds(tmp_path):
    """Conv -> SiLU -> QuantConv with small outputs (a squeeze-excitation input): with
    calibration feeds the pair before SiLU fits the Conv's outputs, and the placed graph
    follows the TensorRT-placement graph closer on other inputs than with the data-free bound."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.SiLU(),
                                torch.nn.Conv2d(8, 4, 3, padding=1)).eval()
    with torch.no_grad():
        model[0].weight.mul_(0.2)
        model[0].bias.zero_()
    QuantRecipe().apply(model)
    calib = [torch.randn(1, 3, 16, 16) for _ in range(4)]
    CalibrationManager(model, progress=False).calibrate(calib, 4, 'max')
    raw = str(tmp_path / 'raw.onnx')
    export_onnx(model, (calib[0], ), raw, ['inputs'], ['outputs'], dynamo=False)
    clean = str(tmp_path / 'clean.onnx')
    clean_up_onnx(raw, clean)
    feeds = [{'inputs': x.numpy()} for x in calib]
    fitted = write_target_onnx(raw, str(tmp_path / 'fitted.onnx'), 'onnxruntime', feeds)
    bound = write_target_onnx(raw, str(tmp_path / 'bound.onnx'), 'onnxruntime')
    inputs = [torch.randn(1, 3, 16, 16).numpy() for _ in range(8)]

    def outputs(path):
        session = as_written(path)
        return np.concatenate([session.run(None, {'inputs': x})[0].reshape(-1) for x in inputs])

    reference = outputs(clean)

    def error(path):
        return np.sqrt(np.mean((outputs(path) - reference)**2))

    assert error(fitted) < error(bound) / 2
