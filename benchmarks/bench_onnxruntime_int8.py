"""ONNX Runtime (CPU) latency and accuracy of our placement targets vs float and quantize_static.

One process, the full-size SceneSegNetwork at 1 x 3 x 320 x 640 (183.5 GMACs; random weights,
or an upstream / our checkpoint with ``--checkpoint``), on synthetic road scenes. Rows:
float ONNX; our ``tensorrt`` target and our ``onnxruntime`` target with the recipe's default skip
list (the layers the small synthetic model's sensitivity run keeps in float), and the
``onnxruntime`` target with every layer INT8; ONNX Runtime's ``quantize_static``
on the same float ONNX with the same calibration batches (its x86 setting, uint8 activations and
per-channel int8 weights, and its defaults). Latency is the median of timed runs after warm-up;
accuracy is against the float model on held-out images (per-pixel argmax agreement, cosine).

    python benchmarks/bench_onnxruntime_int8.py [--runs 3] [--calib-batches 4] [--checkpoint K]
"""
import argparse
import copy
import os
import os.path as osp
import shutil
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
from onnxruntime import quantization as ort_quant  # noqa: E402

from deployment import export_onnx  # noqa: E402
from deployment.graph_passes import clean_up_onnx  # noqa: E402
from deployment.placement import apply_placement  # noqa: E402
from deployment.verify import compare_arrays  # noqa: E402
from projects.SceneSeg import SceneSegNetwork, sceneseg_recipe  # noqa: E402
from projects.SceneSeg.quantization.recipe import DEFAULT_SKIP_LAYERS  # noqa: E402
from projects.SceneSeg.data.synthetic_roads import STYLES, render_scene  # noqa: E402
from projects.SceneSeg.model import MEAN, STD  # noqa: E402
from quantization import CalibrationManager, load_checkpoint_file  # noqa: E402
from quantization import load_state_dict_strict  # noqa: E402
from quantization.fileio import atomic_output  # noqa: E402


def road_images(count, seed):
    """``count`` synthetic road scenes at 320 x 640, normalised as upstream, (1, 3, H, W) each."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        image, _ = render_scene(rng, (320, 640), STYLES['synthetic_day'])
        normalised = (image.astype(np.float32) - np.float32(MEAN)) / np.float32(STD)
        images.append(torch.from_numpy(normalised.transpose(2, 0, 1)[None].copy()))
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
    parser.add_argument('--checkpoint', help='SceneSeg state_dict (upstream or ours); else random')
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SceneSegNetwork().eval()
    if args.checkpoint:
        state = load_checkpoint_file(args.checkpoint)
        load_state_dict_strict(model, state.get('state_dict', state), args.checkpoint)
    calib_images = road_images(args.calib_batches, seed=1)
    eval_images = road_images(2, seed=2)
    work_dir = tempfile.mkdtemp(prefix='bench_ort_int8_')
    paths = {
        name: osp.join(work_dir, f'{name}.onnx')
        for name in ('float', 'ours_tensorrt', 'ours_onnxruntime', 'ours_onnxruntime_all_int8',
                     'quantize_static_u8s8', 'quantize_static_default')
    }
    export(model, calib_images[0], paths['float'])
    for skip_layers, suffix in ((DEFAULT_SKIP_LAYERS, ''), ((), '_all_int8')):
        print(f'calibrating our quantizers (skip {list(skip_layers)}) ...', flush=True)
        quantized = copy.deepcopy(model)
        sceneseg_recipe(quantized, skip_layers).apply(quantized)
        CalibrationManager(
            quantized, progress=False).calibrate(
                calib_images, len(calib_images), method='mse')
        raw, tensorrt = osp.join(work_dir, 'qdq_raw.onnx'), osp.join(work_dir, 'tensorrt.onnx')
        export(quantized, calib_images[0], raw)
        clean_up_onnx(raw, tensorrt)
        if not suffix:
            shutil.copyfile(tensorrt, paths['ours_tensorrt'])
        graph = gs.import_onnx(onnx.load(tensorrt))
        apply_placement(graph, 'onnxruntime')
        with atomic_output(paths[f'ours_onnxruntime{suffix}'], '.onnx') as tmp_path:
            onnx.save(gs.export_onnx(graph), tmp_path)
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
    for name in paths:
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
