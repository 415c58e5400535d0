"""PyTorch float vs ONNX float vs ONNX INT8 (vs QAT) for SceneSeg on one validation set.

Per model: latency as model time only (one session, warm-up, median and p95 on the first image;
preprocessing and the metric are outside the timed call), file size (ONNX external data
included), peak resident memory while loading and running, upstream mIoU per dataset and
pooled, agreement with the first model (argmax pixels, logit cosine); PNGs
Original | GT | each model's prediction for the first images of each dataset; a Markdown and JSON
report, written atomically.
"""
import json
import os
import os.path as osp
from collections import defaultdict
from functools import partial
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import onnx
import torch
from mmengine.evaluator import Evaluator
from tqdm import tqdm

from deployment import OnnxRuntimeModel
from deployment.profiling import PeakMemory, latency_stats
from deployment.verify import compare_arrays, file_size, write_text_files
from quantization import load_model_checkpoint
from quantization.fileio import atomic_output
from quantization.markdown import markdown_table
from .data.layout import BACKGROUND, CLASSES, FOREGROUND, ROAD

#: colours of the three classes in the prediction PNGs
CLASS_COLOURS = np.array([BACKGROUND, FOREGROUND, ROAD], np.uint8)
MIOU_KEYS = ('class_average', 'overall', 'background', 'foreground', 'road', 'dataset_level_mIoU')


def torch_runner(build_model: Callable, checkpoint: str) -> Callable:
    """numpy (1, 3, H, W) normalised image -> numpy logits, from a float or quantized
    checkpoint (its recipe rebuilds the quantized structure)."""
    model = build_model()
    load_model_checkpoint(model, checkpoint)
    model.eval()

    def run(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(image), mode='tensor').numpy()

    return run


def _dims(value_info) -> List:
    """Static sizes of an ONNX tensor's shape; None for a symbolic dimension."""
    return [d.dim_value if d.HasField('dim_value') else None
            for d in value_info.type.tensor_type.shape.dim]


def check_sceneseg_onnx(path: str) -> None:
    """Refuse an ONNX file that is not a SceneSeg graph: one (N, 3, H, W) input and
    (N, 3 classes, H, W) logits first. Reads the graph only (no weights)."""
    graph = onnx.load(path, load_external_data=False).graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    shapes = [_dims(value) for value in inputs] + [_dims(graph.output[0])]

    def nchw(shape, channels):
        return len(shape) == 4 and shape[1] in (None, channels)

    if len(inputs) != 1 or not nchw(shapes[0], 3) or not nchw(shapes[-1], len(CLASSES)):
        raise ValueError(f'{path} is not a SceneSeg graph: inputs {[v.name for v in inputs]} '
                         f'{shapes[:-1]}, first output {shapes[-1]}; expected one (N, 3, H, W) '
                         f'image input and (N, {len(CLASSES)}, H, W) logits')


def onnx_runner(path: str, threads: int = 0) -> Callable:
    session = OnnxRuntimeModel(path, threads)
    name = session.input_names[0]
    return lambda image: next(iter(session.run({name: image}).values()))


def colour(classes: np.ndarray) -> np.ndarray:
    return CLASS_COLOURS[np.clip(classes, 0, len(CLASS_COLOURS) - 1)]


def save_panel(path: str, image: np.ndarray, gt: np.ndarray, predictions: Dict[str, np.ndarray]):
    """One PNG: Original | GT | each prediction, titled."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('Original', image), ('GT', colour(np.where(gt == 255, 0, gt)))]
    panels += [(name, colour(pred)) for name, pred in predictions.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.0))
    for ax, (title, array) in zip(axes, panels):
        ax.imshow(array)
        ax.set_title(title, fontsize=8)
        ax.axis('off')
    fig.tight_layout()
    try:
        with atomic_output(path, '.png') as tmp_path:
            fig.savefig(tmp_path, dpi=100)
    finally:
        plt.close(fig)


def benchmark(models: Sequence[Tuple[str, str, Callable[[], Callable]]],
              preprocess: Callable,
              dataloader,
              evaluator_cfg: dict,
              work_dir: str,
              images_per_dataset: int = 3,
              latency_runs: int = 20,
              warmup: int = 3) -> dict:
    """Run every model on every batch of ``dataloader`` (batch size 1).

    Args:
        models: ``(name, file, make_runner)``; ``make_runner()`` loads the model (measured for
            memory) and returns ``fn(normalised numpy image) -> numpy logits``. The first model
            is the reference for agreement.
        preprocess: ``fn(batch) -> (1, 3, H, W) float32 numpy`` (the data preprocessor).
    """
    batches = [(preprocess(batch), batch) for batch in dataloader]
    if not batches:
        raise ValueError('the benchmark dataloader gave no image')
    if batches[0][0].shape[0] != 1:
        raise ValueError(f'the benchmark needs batch size 1, got {batches[0][0].shape[0]}')
    os.makedirs(osp.join(work_dir, 'predictions'), exist_ok=True)
    report = {'models': {}, 'images': len(batches)}
    reference: List[np.ndarray] = []  # the first model's logits, image by image
    shown: Dict[str, list] = defaultdict(list)
    for index, (_, batch) in enumerate(batches):
        dataset = batch['data_samples'][0].dataset
        if len(shown[dataset]) < images_per_dataset:
            shown[dataset].append(index)
    predictions: Dict[int, Dict[str, np.ndarray]] = defaultdict(dict)
    for name, path, make_runner in models:
        with PeakMemory() as memory:
            run = make_runner()
            evaluator = Evaluator(evaluator_cfg)
            evaluator.dataset_meta = {'classes': CLASSES}
            agreement, cosines = [], []
            for index, (image, batch) in enumerate(tqdm(batches, desc=name, leave=False)):
                logits = np.asarray(run(image))
                evaluator.process(data_samples=[torch.from_numpy(logits[0])], data_batch=batch)
                if name == models[0][0]:
                    reference.append(logits)
                else:
                    agreement.append(float((logits.argmax(1) == reference[index].argmax(1)).mean()))
                    cosines.append(compare_arrays(reference[index], logits)['cosine'])
                if any(index in shown_ids for shown_ids in shown.values()):
                    predictions[index][name] = logits[0].argmax(0)
            latency = latency_stats(partial(run, batches[0][0]), warmup, latency_runs)
            del run  # freed before the next model's memory is measured
        metrics = evaluator.evaluate(len(batches))
        report['models'][name] = {
            'file': path,
            'size_mb': file_size(path) / 2**20 if path and osp.isfile(path) else None,
            'latency': latency,
            'peak_memory_mb': memory.peak_mb,
            'metrics': metrics,
            'argmax_agreement_pct': 100.0 * float(np.mean(agreement)) if agreement else 100.0,
            'min_logit_cosine': float(min(cosines)) if cosines else 1.0
        }
    for dataset, indices in shown.items():
        for index in indices:
            batch = batches[index][1]
            save_panel(
                osp.join(work_dir, 'predictions',
                         f'{dataset}_{index:04d}.png'), batch['inputs'][0].permute(1, 2, 0).numpy(),
                batch['data_samples'][0].gt_mask.numpy(), predictions[index])
    report['report_files'] = write_benchmark_report(report, work_dir)
    return report


def markdown(report: dict) -> str:
    models = report['models']
    first = next(iter(models.values()))
    scopes = sorted({key.split('/')[1]
                     for key in first['metrics']},
                    key=lambda s: (s == 'pooled', s))
    rows = [(name, f"{row['latency']['median_ms']:.1f}", f"{row['latency']['p95_ms']:.1f}",
             f"{row['size_mb']:.1f}" if row['size_mb'] is not None else '-',
             f"{row['peak_memory_mb']:.0f}", f"{row['argmax_agreement_pct']:.2f}",
             f"{row['min_logit_cosine']:.5f}") for name, row in models.items()]
    lines = [
        f"# SceneSeg benchmark ({report['images']} validation images)", '',
        markdown_table(('model', 'median ms', 'p95 ms', 'file MB', 'peak memory MB',
                        'argmax agreement %', 'min logit cosine'), rows)
    ]
    for scope in scopes:
        miou = [(name, *[f"{row['metrics'].get(f'sceneseg/{scope}/{k}', float('nan')):.2f}"
                         for k in MIOU_KEYS]) for name, row in models.items()]
        lines += ['', f'## mIoU (%), {scope}', '', markdown_table(('model', *MIOU_KEYS), miou)]
    return '\n'.join(lines) + '\n'


def write_benchmark_report(report: dict, work_dir: str) -> List[str]:
    return write_text_files(work_dir, {
        'benchmark.json': json.dumps(report, indent=2, default=float),
        'benchmark.md': markdown(report)
    })
