"""What the headline measurements share: their options, a table row that judges a goal by its
interval, the spread over training seeds, and the result files."""
import argparse
import json
import statistics
from typing import List, Optional, Sequence, Tuple

from deployment.verify import write_text_files
from quantization.bootstrap import Interval, frames_needed
from quantization.markdown import markdown_table

HEADERS = ('model', 'metric [95%]', 'difference [95%]', 'stderr of difference',
           'frames for stderr = goal / 3', 'goal', 'verdict')
ALIGN = 'lrrrrll'


def goal_row(label: str, metric: Interval, difference: Optional[Interval], versus: str = '',
             goal: Tuple[Optional[float], Optional[float]] = (None, None), frames: int = 0) -> list:
    """``label``, the metric, the difference from ``versus``, its standard error; with a
    ``goal`` (lowest, highest allowed difference) the frames that goal needs and the verdict."""
    if difference is None:
        return [label, str(metric), '', '', '', '', '']
    low, high = goal
    cells = [label, str(metric), f'{difference} vs {versus}', f'{difference.stderr:.3f}']
    if low is None and high is None:
        return cells + ['', '', '']
    size = min(abs(bound) for bound in goal if bound is not None)
    wording = f'≥ {low:+.2f}' if high is None else f'within ±{high:.2f}'
    # a goal of 0 points has no frame count that settles it near its edge
    needed = f'{frames_needed(difference.stderr, frames, size / 3):,}' if size else ''
    return cells + [needed, wording, difference.judge(low, high)]


def parser(doc: str, epochs: int, lr: float, work_dir: str) -> argparse.ArgumentParser:
    """The options every measurement has (the evaluation-set option is the caller's)."""
    result = argparse.ArgumentParser(description=doc.splitlines()[0])
    result.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='training seeds of the QAT runs')
    result.add_argument('--epochs', type=int, default=epochs)
    result.add_argument('--lr', type=float, default=lr)
    result.add_argument('--work-dir', default=work_dir)
    return result


def spread(label: str, values: Sequence[float]) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return (f'{label} over {len(values)} seeds: mean {statistics.mean(values):.2f}, standard '
            f'deviation {deviation:.2f}, range {min(values):.2f}-{max(values):.2f}')


def write_results(work_dir: str, title: str, rows: List[list], notes: Sequence[str],
                  data: dict) -> str:
    """``results.md`` (title, table, notes) and ``results.json`` (``rows`` and ``data``)."""
    text = '\n'.join([f'# {title}', '', markdown_table(HEADERS, rows, ALIGN), '', *notes, ''])
    write_text_files(work_dir, {'results.md': text,
                                'results.json': json.dumps({'rows': rows, **data}, indent=2)})
    return text
