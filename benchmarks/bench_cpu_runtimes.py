"""CPU INT8 runtimes for SceneSeg: our deploy targets against ONNX Runtime's quantize_static,
NNCF and OpenVINO float, speed and fidelity measured in one process.

The full-size SceneSegNetwork at 1 x 3 x 320 x 640 (random weights, seed 0, unless
``--checkpoint``; ``--config`` takes the network and the images from a SceneSeg model config,
whose labels then add the task metric). Every model is built from the same float network and
calibrated on the same images (ours: the PTQ default, entropy, with the default skip list and
MSE with every layer INT8, as QAT starts; quantize_static and NNCF: their defaults).

Speed: the models are interleaved over ``--rounds`` rounds (each round visits every model once,
the start rotating, a pause before each), and each ratio is the median over rounds of the float
ONNX Runtime time over the model's time in that round, with its lowest and highest round.
Fidelity against the float model on held-out images: the centred cosine (logits minus each
image's per-class spatial mean, lowest over images) and the per-class IoU agreement of the
predictions (%; on random weights the predictions of the centred logits: the raw argmax
saturates there, the random network predicting one class everywhere). With ``--config``, the
mIoU against the labels (SceneSeg's pooled class average) too.

    python benchmarks/bench_cpu_runtimes.py [--rounds 7] [--images 8] [--calib-images 4]
        [--config C --checkpoint K] [--only NAME ...] [--ablate default|all] [--output DIR]

Peers are optional benchmark extras (``pip install -e .[benchmarks]``): a row whose package is
missing is left out and named.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx_graphsurgeon as gs  # noqa: E402
import torch  # noqa: E402
from mmengine.model import BaseModel  # noqa: E402
from tqdm import tqdm  # noqa: E402

from deployment import OnnxRuntimeModel, export_onnx  # noqa: E402
from deployment.openvino_runtime import OpenVINOModel, import_openvino  # noqa: E402
from deployment.placement import ONNXRUNTIME_PASSES, write_target_onnx  # noqa: E402
from deployment.profiling import interleaved_speedups  # noqa: E402
from deployment.verify import (centered, centered_cosine, class_iou_agreement,  # noqa: E402
                               file_size, write_text_files)
from projects.SceneSeg import SceneSegNetwork, sceneseg_recipe  # noqa: E402
from projects.SceneSeg.data.synthetic_roads import STYLES, render_scene  # noqa: E402
from projects.SceneSeg.model import MEAN, STD  # noqa: E402
from projects.SceneSeg.quantization.recipe import (DEFAULT_CALIB_METHOD,  # noqa: E402
                                                   DEFAULT_SKIP_LAYERS, QAT_CALIB_METHOD)
from quantization import CalibrationManager, load_model_checkpoint  # noqa: E402
from quantization.markdown import markdown_table  # noqa: E402


def road_images(count, seed, size=(320, 640)):
    """``count`` synthetic road scenes, normalised as upstream, (1, 3, H, W) float32 each."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        image, _ = render_scene(rng, size, STYLES['synthetic_day'])
        normalised = (image.astype(np.float32) - np.float32(MEAN)) / np.float32(STD)
        images.append(normalised.transpose(2, 0, 1)[None].copy())
    return images, [None] * count


def config_images(config, count, seed):
    """The first ``count`` (image, data batch) of the config's val dataloader, batch size 1."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(config)
    cfg.val_dataloader.batch_size = 1
    loader = Runner.build_dataloader(cfg.val_dataloader, seed=seed)
    model = build_network(config)
    images, batches = [], []
    for batch in loader:
        if len(images) == count:
            break
        images.append(model.data_preprocessor(batch, False)['inputs'].numpy())
        batches.append(batch)
    return images, batches


def build_network(config):
    if not config:
        return SceneSegNetwork()
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import projects.SceneSeg  # noqa: F401
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    return MODELS.build(cfg.model)


def ours(model, calib, skip_layers, method, work_dir, suffix):
    """Our Q/DQ ONNX for the tensorrt, onnxruntime and openvino targets, as deploy writes them,
    calibrated with the amax ``method``."""
    quantized = copy.deepcopy(model)
    sceneseg_recipe(quantized, skip_layers).apply(quantized)
    CalibrationManager(quantized, progress=False).calibrate(
        [torch.from_numpy(image) for image in calib], len(calib), method=method)
    raw = osp.join(work_dir, f'qdq_raw{suffix}.onnx')
    export(quantized, calib[0], raw)
    feeds = [{'image': image} for image in calib]
    return {target: write_target_onnx(raw, osp.join(work_dir, f'{target}{suffix}.onnx'), target,
                                      feeds)
            for target in ('tensorrt', 'onnxruntime', 'openvino')}


def export(model, image, path):
    class Logits(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, image):  # an MMEngine model's 'tensor' mode, or the bare network
            return (self.model(image, mode='tensor')
                    if isinstance(self.model, BaseModel) else self.model(image))

    export_onnx(Logits(), (torch.from_numpy(image), ), path, ['image'], ['logits'], dynamo=False)


def quantize_static(float_path, calib, path):
    from onnxruntime import quantization as ort_quant

    class Reader(ort_quant.CalibrationDataReader):

        def __init__(self):
            self.batches = iter([{'image': image} for image in calib])

        def get_next(self):
            return next(self.batches, None)

    ort_quant.quantize_static(float_path, path, Reader(), quant_format=ort_quant.QuantFormat.QDQ,
                              activation_type=ort_quant.QuantType.QUInt8,
                              weight_type=ort_quant.QuantType.QInt8, per_channel=True)
    return path


def nncf_ir(float_path, calib, path):
    import nncf
    ov = import_openvino()
    model = ov.Core().read_model(float_path)
    quantized = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib),
                              preset=nncf.QuantizationPreset.PERFORMANCE)
    ov.save_model(quantized, path, compress_to_fp16=False)
    return path


class RuntimeModel:
    """One model in one runtime: ``run(image) -> logits``."""

    def __init__(self, path, runtime, precision='f32'):
        self.path = path
        if runtime == 'onnxruntime':
            session = OnnxRuntimeModel(path)
        else:
            session = OpenVINOModel(path, precision)
        name = session.input_names[0]
        self.run = lambda image: next(iter(session.run({name: image}).values()))


def without_pass(tensorrt_path, left_out, work_dir, suffix):
    """The ``onnxruntime`` target's graph with one of its passes left out (the ablation)."""
    graph = gs.import_onnx(onnx.load(tensorrt_path))
    for graph_pass in ONNXRUNTIME_PASSES:
        if graph_pass is not left_out:
            graph_pass(graph)
    path = osp.join(work_dir, f'without_{left_out.__name__}{suffix}.onnx')
    onnx.save(gs.export_onnx(graph), path)
    return path


def ablation_rows(paths, work_dir, suffix):
    """One row per pass of the ``onnxruntime`` target: the target without it, in ONNX Runtime."""
    rows = {}
    for graph_pass in ONNXRUNTIME_PASSES:
        path = without_pass(paths['tensorrt'], graph_pass, work_dir, suffix)
        rows[f'without_{graph_pass.__name__}{suffix}'] = (
            f'`onnxruntime` target{" (every layer INT8)" if suffix else ""} without '
            f'`{graph_pass.__name__}`', 'ONNX Runtime',
            (lambda p: lambda: RuntimeModel(p, 'onnxruntime'))(path))
    return rows


def build_rows(model, calib, work_dir, only, ablate=None):
    """``{row name: (label, runtime, make_runner)}``, building each artifact once; with
    ``ablate`` ('default' or 'all'), the ``onnxruntime`` target without each of its passes for
    that skip list."""
    float_path = osp.join(work_dir, 'float.onnx')
    export(model, calib[0], float_path)
    default = ours(model, calib, DEFAULT_SKIP_LAYERS, DEFAULT_CALIB_METHOD, work_dir, '')
    every = None
    rows = {
        'float_ort': ('float', 'ONNX Runtime', lambda: RuntimeModel(float_path, 'onnxruntime')),
        'float_ov_f32': ('float, f32', 'OpenVINO', lambda: RuntimeModel(float_path, 'openvino')),
        'float_ov_default': ('float, default precision', 'OpenVINO',
                             lambda: RuntimeModel(float_path, 'openvino', '')),
        'ours_tensorrt_ort': ('ours `tensorrt` target, default skip list', 'ONNX Runtime',
                              lambda: RuntimeModel(default['tensorrt'], 'onnxruntime')),
        'ours_onnxruntime': ('ours `onnxruntime` target, default skip list', 'ONNX Runtime',
                             lambda: RuntimeModel(default['onnxruntime'], 'onnxruntime')),
        'ours_openvino': ('ours `openvino` target, default skip list, f32 rest', 'OpenVINO',
                          lambda: RuntimeModel(default['openvino'], 'openvino')),
        'ours_openvino_default': (
            'ours `openvino` target, default skip list, default rest', 'OpenVINO',
            lambda: RuntimeModel(default['openvino'], 'openvino', '')),
    }
    if not only or ablate == 'all' or {'ours_onnxruntime_all', 'ours_openvino_all'} & set(only):
        every = ours(model, calib, (), QAT_CALIB_METHOD, work_dir, '_all')
        rows['ours_onnxruntime_all'] = ('ours `onnxruntime` target, every layer INT8',
                                        'ONNX Runtime',
                                        lambda: RuntimeModel(every['onnxruntime'], 'onnxruntime'))
        rows['ours_openvino_all'] = ('ours `openvino` target, every layer INT8', 'OpenVINO',
                                     lambda: RuntimeModel(every['openvino'], 'openvino', ''))
    peers = {
        'quantize_static': ('ONNX Runtime `quantize_static` u8/s8 per-channel', 'ONNX Runtime',
                            quantize_static, 'onnx', 'onnxruntime'),
        'nncf': ('NNCF (performance preset), default precision', 'OpenVINO', nncf_ir, 'xml',
                 'openvino'),
    }
    missing = []
    for name, (label, runtime, make, suffix, kind) in peers.items():
        if only and name not in only:
            continue
        try:
            path = make(float_path, calib, osp.join(work_dir, f'{name}.{suffix}'))
        except ImportError as err:
            missing.append(f'{name}: {err}')
            continue
        rows[name] = (label, runtime,
                      (lambda p, k: lambda: RuntimeModel(p, k, ''))(path, kind))
    if ablate:
        rows.update(ablation_rows(default if ablate == 'default' else every, work_dir,
                                  '' if ablate == 'default' else '_all'))
        if only:
            only = [*only, *(name for name in rows if name.startswith('without_'))]
    keep = ['float_ort', *(only or [])]
    rows = {name: row for name, row in rows.items() if not only or name in keep}
    return rows, missing


def miou(logits, batches):
    """SceneSeg's pooled class-average mIoU (%) of one model's logits against the labels."""
    from mmengine.evaluator import Evaluator
    from projects.SceneSeg.data.layout import CLASSES
    evaluator = Evaluator(dict(type='SceneSegIoU'))
    evaluator.dataset_meta = {'classes': CLASSES}
    for one, batch in zip(logits, batches):
        evaluator.process(data_samples=[torch.from_numpy(one[0])], data_batch=batch)
    return evaluator.evaluate(len(batches))['sceneseg/pooled/class_average']


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--images', type=int, default=8, help='held-out images for fidelity')
    parser.add_argument('--calib-images', type=int, default=4)
    parser.add_argument('--config', help='SceneSeg model config: its network and val images')
    parser.add_argument('--checkpoint', help='float SceneSeg checkpoint; else random weights')
    parser.add_argument('--only', nargs='*', help='row names besides float_ort')
    parser.add_argument('--ablate', choices=['default', 'all'],
                        help='add the onnxruntime target without each of its passes, for the '
                        'default skip list or every layer INT8')
    parser.add_argument('--output', default='work_dirs/bench_cpu_runtimes')
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_network(args.config).eval()
    if args.checkpoint:
        load_model_checkpoint(model, args.checkpoint)
    if args.config:
        calib, _ = config_images(args.config, args.calib_images, seed=1)
        images, batches = config_images(args.config, args.images, seed=0)
    else:
        calib, _ = road_images(args.calib_images, seed=1)
        images, batches = road_images(args.images, seed=2)
    load_before = os.getloadavg()[0]
    print(f'load before: {load_before:.2f}', flush=True)
    work_dir = tempfile.mkdtemp(prefix='bench_cpu_runtimes_')
    rows, missing = build_rows(model, calib, work_dir, args.only, args.ablate)
    runners, outputs = {}, {}
    for name, (label, runtime, make) in tqdm(rows.items(), desc='fidelity'):
        runners[name] = make()
        outputs[name] = [runners[name].run(image) for image in images]  # also the warm-up
    speed = interleaved_speedups({name: (lambda r: lambda: r.run(images[0]))(runner)
                                  for name, runner in runners.items()}, 'float_ort',
                                 rounds=args.rounds)
    reference = np.concatenate(outputs['float_ort'])
    predictions = (lambda logits: logits) if args.checkpoint else centered
    table, results = [], {}
    for name, (label, runtime, _) in rows.items():
        logits = np.concatenate(outputs[name])
        results[name] = {
            'label': label, 'runtime': runtime, **speed[name],
            'centered_cosine': centered_cosine(reference, logits),
            'class_iou_agreement': class_iou_agreement(predictions(reference),
                                                       predictions(logits)),
            'file_mb': file_size(runners[name].path) / 2**20,
            'miou': miou(outputs[name], batches) if batches[0] is not None else None
        }
        r = results[name]
        table.append([label, runtime, f"{r['ratio']:.2f}x [{r['low']:.2f}, {r['high']:.2f}]",
                      f"{r['median_ms']:.0f}", f"{r['centered_cosine']:.4f}",
                      f"{r['class_iou_agreement']:.2f}", f"{r['file_mb']:.1f}",
                      f"{r['miou']:.2f}" if r['miou'] is not None else '-'])
    shape = 'x'.join(str(d) for d in images[0].shape)
    weights = f'checkpoint {args.checkpoint}' if args.checkpoint else 'random weights'
    lines = [
        f'# CPU runtimes, SceneSeg {shape} ({weights})', '',
        f'{os.cpu_count()} cores; {args.rounds} interleaved rounds; speed-up over float '
        f"ONNX Runtime ({results['float_ort']['median_ms']:.0f} ms), median [lowest, highest "
        f'round]; fidelity vs float on {len(images)} images; calibration on {len(calib)} '
        f'images; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after.', '',
        markdown_table(('model', 'runtime', 'speed-up', 'ms', 'centred cosine',
                        'class IoU agreement %', 'MB', 'mIoU %'), table, 'llrrrrrr')
    ]
    if missing:
        lines += ['', 'Left out (package missing): ' + '; '.join(missing)]
    text = '\n'.join(lines) + '\n'
    print(text)
    os.makedirs(args.output, exist_ok=True)
    write_text_files(args.output, {'bench_cpu_runtimes.md': text,
                                   'bench_cpu_runtimes.json': json.dumps(results, indent=2)})


if __name__ == '__main__':
    main()
