"""ONNX Runtime (CPU) latency and accuracy of our placement targets vs float and quantize_static.

One process, one conv net of SceneSeg's size at 1 x 3 x 320 x 640 (~180 GMACs: a light strided
encoder, then SceneSeg's neck and head widths 1280 -> 768 -> 512 -> 256 -> 128 -> 64 -> 3 with
ConvTranspose upsampling and residual skip adds; ReLU in place of GELU). Rows:
float ONNX; our ``tensorrt`` target; our ``onnxruntime`` target; ONNX Runtime's ``quantize_static``
on the same float ONNX with the same calibration batches (its x86 setting, uint8 activations and
per-channel int8 weights, and its defaults). Latency is the median of timed runs after warm-up;
accuracy is against the float model on held-out images (per-pixel argmax agreement, cosine).

    python benchmarks/bench_onnxruntime_int8.py [--runs 3] [--calib-batches 4]
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx_graphsurgeon as gs  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from onnxruntime import quantization as ort_quant  # noqa: E402
from torch import nn  # noqa: E402

from deployment import export_onnx  # noqa: E402
from deployment.graph_passes import clean_up_onnx  # noqa: E402
from deployment.placement import apply_placement  # noqa: E402
from deployment.verify import compare_arrays  # noqa: E402
from quantization import CalibrationManager, QuantRecipe  # noqa: E402
from quantization.nn import Add  # noqa: E402


def conv_relu(in_channels, out_channels, stride=1, kernel=3):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2), nn.ReLU(inplace=True))


class SceneSegSizedNet(nn.Module):
    """Encoder to H/32, then SceneSeg's neck/head layout (up + skip add, two 3x3 convs)."""

    def __init__(self):
        super().__init__()
        widths = [32, 48, 80, 160, 320]
        self.encoder = nn.ModuleList()
        in_channels = 3
        for width in widths:
            self.encoder.append(conv_relu(in_channels, width, stride=2))
            in_channels = width
        self.expand = conv_relu(320, 1280, kernel=1)
        stages = [(1280, 1280, 768, 768, 160), (768, 768, 512, 512, 80), (512, 512, 512, 256, 48),
                  (256, 256, 256, 128, 32), (128, 128, 128, 64, None)]
        self.ups, self.skips, self.adds, self.decoders = (nn.ModuleList() for _ in range(4))
        for up_in, up_out, mid, out, skip_in in stages:
            self.ups.append(nn.ConvTranspose2d(up_in, up_out, 2, 2))
            self.skips.append(nn.Conv2d(skip_in, up_out, 1) if skip_in else nn.Identity())
            self.adds.append(Add() if skip_in else nn.Identity())
            self.decoders.append(nn.Sequential(conv_relu(up_out, mid), conv_relu(mid, out)))
        self.classifier = nn.Conv2d(64, 3, 3, padding=1)

    def forward(self, image):
        features, x = [], image
        for stage in self.encoder:
            x = stage(x)
            features.append(x)
        x = self.expand(x)
        for i, (up, skip, add,
                decoder) in enumerate(zip(self.ups, self.skips, self.adds, self.decoders)):
            x = up(x)
            if i < 4:
                x = add(x, skip(features[3 - i]))
            x = decoder(x)
        return self.classifier(x)


def road_like_images(count, seed):
    """Smooth random colour fields with bright blobs, (1, 3, 320, 640) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(count):
        coarse = torch.rand(1, 3, 10, 20, generator=generator)
        image = F.interpolate(coarse, size=(320, 640), mode='bilinear', align_corners=False)
        image = image + 0.05 * torch.randn(1, 3, 320, 640, generator=generator)
        images.append(image.clamp(0, 1))
    return images


class Reader(ort_quant.CalibrationDataReader):

    def __init__(self, input_name, images):
        self.batches = iter([{input_name: image.numpy()} for image in images])

    def get_next(self):
        return next(self.batches, None)


def latency_ms(path, image, runs):
    options = ort.SessionOptions()
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: image}
    session.run(None, feed)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), session


def export(model, image, path):
    export_onnx(model, (image, ), path, ['image'], ['logits'], dynamo=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--calib-batches', type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SceneSegSizedNet().eval()
    calib_images = road_like_images(args.calib_batches, seed=1)
    eval_images = road_like_images(2, seed=2)
    work_dir = tempfile.mkdtemp(prefix='bench_ort_int8_')
    paths = {
        name: osp.join(work_dir, f'{name}.onnx')
        for name in ('float', 'qdq_raw', 'ours_tensorrt', 'ours_onnxruntime',
                     'quantize_static_u8s8', 'quantize_static_default')
    }
    export(model, calib_images[0], paths['float'])
    print('float ONNX written; calibrating our quantizers ...', flush=True)

    QuantRecipe().apply(model)
    CalibrationManager(
        model, progress=False).calibrate(
            calib_images, len(calib_images), method='mse')
    export(model, calib_images[0], paths['qdq_raw'])
    clean_up_onnx(paths['qdq_raw'], paths['ours_tensorrt'])
    graph = gs.import_onnx(onnx.load(paths['ours_tensorrt']))
    apply_placement(graph, 'onnxruntime')
    onnx.save(gs.export_onnx(graph), paths['ours_onnxruntime'])
    print('running quantize_static ...', flush=True)
    ort_quant.quantize_static(
        paths['float'],
        paths['quantize_static_u8s8'],
        Reader('image', calib_images),
        quant_format=ort_quant.QuantFormat.QDQ,
        activation_type=ort_quant.QuantType.QUInt8,
        weight_type=ort_quant.QuantType.QInt8,
        per_channel=True)
    ort_quant.quantize_static(paths['float'], paths['quantize_static_default'],
                              Reader('image', calib_images))

    rows = {}
    for name in ('float', 'ours_tensorrt', 'ours_onnxruntime', 'quantize_static_u8s8',
                 'quantize_static_default'):
        print(f'timing {name} ...', flush=True)
        milliseconds, session = latency_ms(paths[name], eval_images[0].numpy(), args.runs)
        outputs = [session.run(None, {'image': image.numpy()})[0] for image in eval_images]
        rows[name] = (milliseconds, outputs, os.path.getsize(paths[name]))
    float_ms, float_outputs, _ = rows['float']
    print(f'\nONNX Runtime {ort.__version__}, CPU, {os.cpu_count()} cores, 1 x 3 x 320 x 640, '
          f'median of {args.runs} runs after warm-up')
    print('\n| model | latency (ms) | speed-up vs float | argmax agreement with float (%) | '
          'cosine vs float | file (MB) |')
    print('|---|---:|---:|---:|---:|---:|')
    for name, (milliseconds, outputs, size) in rows.items():
        agreement = np.mean([(o.argmax(1) == f.argmax(1)).mean()
                             for o, f in zip(outputs, float_outputs)]) * 100
        cosine = min(compare_arrays(f, o)['cosine'] for o, f in zip(outputs, float_outputs))
        print(f'| {name} | {milliseconds:.0f} | {float_ms / milliseconds:.2f}x | {agreement:.2f} | '
              f'{cosine:.5f} | {size / 2**20:.1f} |')


if __name__ == '__main__':
    main()
