"""Compare an exported model in its runtime with the PyTorch models it came from; the report."""
import json
import os
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np
from tqdm import tqdm

from quantization.fileio import write_text_atomic
from quantization.markdown import markdown_table

Outputs = Dict[str, np.ndarray]


def compare_arrays(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Max / mean absolute error and cosine similarity of two arrays of one shape."""
    if reference.shape != candidate.shape:
        raise ValueError(f'shapes differ: {reference.shape} vs {candidate.shape}')
    reference = reference.astype(np.float64).ravel()
    candidate = candidate.astype(np.float64).ravel()
    difference = np.abs(reference - candidate)
    norms = np.linalg.norm(reference) * np.linalg.norm(candidate)
    cosine = float(reference @ candidate /
                   norms) if norms > 0 else float(np.array_equal(reference, candidate))
    return {
        'max_abs': float(difference.max(initial=0.0)),
        'mean_abs': float(difference.mean()),
        'cosine': cosine
    }


def centered(logits: np.ndarray) -> np.ndarray:
    """(N, C, H, W) logits minus each image's per-class spatial mean: what decides between
    classes pixel by pixel (a random-weight network adds a large per-class constant that makes
    raw cosine and argmax saturate)."""
    logits = np.asarray(logits, np.float64)
    return logits - logits.mean(axis=(2, 3), keepdims=True)


def centered_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The lowest over images of the cosine between the centred logits of two models."""
    reference, candidate = centered(reference), centered(candidate)
    return min(compare_arrays(r, c)['cosine'] for r, c in zip(reference, candidate))


def class_iou_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Per-class IoU between two models' predictions (argmax over C of (N, C, H, W) logits),
    averaged over the classes either predicts, then over images, in %: 100 when both predict
    the same class everywhere. On random weights pass :func:`centered` logits."""
    ious = []
    for r, c in zip(np.asarray(reference).argmax(1), np.asarray(candidate).argmax(1)):
        per_class = [np.logical_and(r == k, c == k).sum() / np.logical_or(r == k, c == k).sum()
                     for k in np.union1d(np.unique(r), np.unique(c))]
        ious.append(np.mean(per_class))
    return 100.0 * float(np.mean(ious))


def _merge(stats: List[dict]) -> dict:
    return {
        'max_abs': max(s['max_abs'] for s in stats),
        'mean_abs': float(np.mean([s['mean_abs'] for s in stats])),
        'cosine': min(s['cosine'] for s in stats)
    }


def verify_outputs(runtime_run: Callable[[Outputs], Outputs], batches: Iterable[Outputs],
                   references: Dict[str, Callable[[Outputs], Outputs]],
                   progress: Optional[str] = None) -> Dict[str, dict]:
    """Run every batch through the runtime and each reference; per reference and output name,
    the worst max error, the mean of mean errors and the lowest cosine over the batches.

    Args:
        runtime_run: inputs by name -> outputs by name (ONNX Runtime, OpenVINO).
        batches: inputs by name, as numpy arrays.
        references: e.g. ``{'pytorch_fake_quant': fn, 'pytorch_float': fn}``, same signature.
        progress: Label of a progress bar over the batches (None: no bar).
    """
    per_reference: Dict[str, Dict[str, list]] = {name: {} for name in references}
    seen = 0
    for inputs in tqdm(batches, desc=progress, disable=progress is None, leave=False):
        runtime_outputs = runtime_run(inputs)
        for ref_name, reference in references.items():
            ref_outputs = reference(inputs)
            for out_name, value in runtime_outputs.items():
                stats = compare_arrays(np.asarray(ref_outputs[out_name]), value)
                per_reference[ref_name].setdefault(out_name, []).append(stats)
        seen += 1
    if seen == 0:
        raise ValueError('verification saw 0 batches')
    return {
        ref: {
            out: _merge(stats)
            for out, stats in outs.items()
        }
        for ref, outs in per_reference.items()
    }


def markdown_report(report: dict) -> str:
    """The verification part of a deploy report as Markdown tables."""
    lines = [f"# Deployment report: {report.get('model', '')}", '']
    if report.get('cpu_int8_note'):
        lines += [f"Note: {report['cpu_int8_note']}.", '']
    for artifact, entry in report.get('artifacts', {}).items():
        lines.append(
            f"- `{artifact}`: {entry.get('path', '')} ({entry.get('size_bytes', 0)} bytes)")
    for target, result in report.get('targets', {}).items():
        comparisons = [(ref, out, f"{stats['max_abs']:.3e}", f"{stats['mean_abs']:.3e}",
                        f"{stats['cosine']:.6f}")
                       for ref, outputs in result.get('verification', {}).items()
                       for out, stats in outputs.items()]
        lines += ['', f'## Target `{target}`', '',
                  markdown_table(('compared with', 'output', 'max abs', 'mean abs', 'cosine'),
                                 comparisons, 'llrrr')]
        if result.get('metrics'):
            lines += ['', *_metric_tables(result['metrics'], result.get('intervals'))]
        if result.get('precision'):
            lines += ['', *_precision_table(result['precision'])]
        if 'lint' in result:
            check = 'OpenVINO precision check' if 'precision' in result else 'TensorRT lint'
            lines += ['', f"{check}: {len(result['lint'])} issue(s)"]
            lines += [f'- {issue}' for issue in result['lint']]
    package = report.get('package')
    if package:
        lines += ['', '## Package', '']
        lines += [f'- `{name}`: {path}' for name, path in package['files'].items()]
        if package.get('warning'):
            lines += ['', f"Warning: {package['warning']}"]
    engine = report.get('tensorrt_engine')
    if engine:
        lines += [
            '', '## TensorRT engine', '',
            engine.get('status', ''), '', '```',
            engine.get('trtexec', ''), engine.get('polygraphy', ''), '```'
        ]
        lines += _engine_check_lines(engine.get('checks'))
    return '\n'.join(lines) + '\n'


def _engine_check_lines(checks: Optional[dict]) -> List[str]:
    """The built engines at run time: per graph and profile shape, the lowest output cosine
    against the ONNX as written; INT8 over FP16 speed; how many layers read INT8."""
    if not checks:
        return []
    rows = [(graph, label, f"{min(s['cosine'] for s in outputs.values()):.6f}")
            for graph, shapes in checks['shapes'].items() for label, outputs in shapes.items()]
    lines = ['', markdown_table(('graph', 'shape', 'lowest cosine vs ONNX as written'), rows)]
    for graph, speed in checks['speedup_over_fp16'].items():
        lines.append(f"- {graph or 'model'}: INT8 {speed['ratio']:.2f}x FP16 "
                     f"[{speed['low']:.2f}, {speed['high']:.2f}] over {speed['rounds']} rounds")
    for graph, layers in checks['layers'].items():
        int8 = sum(any('Int8' in f for f in layer.get('inputs', [])) for layer in layers)
        lines.append(f"- {graph or 'model'}: {int8} of {len(layers)} engine layers read INT8 "
                     '(each layer\'s formats in the JSON report)')
    if checks.get('metrics'):
        lines += ['', *_metric_tables(checks['metrics'], None)]
    return lines


def _precision_table(rows: List[dict]) -> List[str]:
    """Each weight layer as the runtime executed it; quantized layers first counted."""
    quantized = [row for row in rows if row['quantized']]
    int8 = sum(row['int8'] for row in quantized)
    return [f'Per-layer precision: {int8} of {len(quantized)} quantized layers run INT8; '
            f'{len(rows) - len(quantized)} float layer(s).', '',
            markdown_table(('layer', 'op', 'INT8 weight', 'runs as', 'kernel', 'precision'),
                           [(row['layer'], row['op'], 'yes' if row['quantized'] else 'no',
                             row['layer_type'], row['kernel'], row['precision'])
                            for row in rows], 'llllll')]


def _interval_text(interval: dict) -> str:
    return f"{interval['value']:.2f} [{interval['low']:.2f}, {interval['high']:.2f}]"


def _metric_tables(rows: List[dict], intervals: Optional[dict]) -> List[str]:
    """The task metric of each runner; with bootstrap ``intervals`` (a BootstrapResult as a
    dict), every figure with its interval and a table of the paired differences."""
    keys = list(rows[0]['values'])
    if not intervals:
        return [markdown_table(['model', *keys],
                               [[row['model'], *[f'{row["values"][k]:.4f}' for k in keys]]
                                for row in rows])]
    metric, difference = intervals['metric'], intervals['difference']
    lines = [markdown_table(['model', *keys],
                            [[name, *[_interval_text(metric[name][k]) if k in metric[name] else ''
                                      for k in keys]] for name in metric]),
             '', f"Minus {intervals['reference']}, paired on the same frames:", '',
             markdown_table(['model', *keys],
                            [[name, *[_interval_text(difference[name][k])
                                      if k in difference[name] else '' for k in keys]]
                             for name in difference]),
             '', f"{intervals['level']:.0%} bootstrap intervals over {intervals['frames']} frames "
             f"({intervals['rounds']} draws)"]
    return lines


def write_text_files(work_dir: str, texts: Dict[str, str]) -> List[str]:
    """Write ``{file name: text}`` into ``work_dir``, each to a temporary name renamed when
    complete; returns the paths in order."""
    paths = []
    for name, text in texts.items():
        path = os.path.join(work_dir, name)
        write_text_atomic(path, text)
        paths.append(path)
    return paths


def write_report(report: dict, work_dir: str, name: str = 'deploy_report') -> List[str]:
    """Write ``name.json`` and ``name.md`` into ``work_dir`` atomically; returns both paths."""
    return write_text_files(work_dir, {
        f'{name}.json': json.dumps(report, indent=2),
        f'{name}.md': markdown_report(report)
    })


def file_size(path: str) -> int:
    """Bytes of an artifact with the files it reads: an ONNX file's external data, an OpenVINO
    ``.xml``'s ``.bin``."""
    companion = f'{os.path.splitext(path)[0]}.bin' if path.endswith('.xml') else f'{path}.data'
    size = os.path.getsize(path)
    return size + (os.path.getsize(companion) if os.path.exists(companion) else 0)
