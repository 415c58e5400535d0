"""Result tables of the quantization flows, with bootstrap intervals where they were drawn."""
from typing import List, Optional, Sequence, Tuple

from quantization.bootstrap import BootstrapResult
from quantization.markdown import markdown_table

Rows = List[Tuple[str, dict]]  # (row name, metrics)


def metric_keys(metrics: dict, prefix: str = '') -> List[str]:
    """The float-valued metric keys starting with ``prefix``, sorted."""
    return sorted(k for k, v in metrics.items() if isinstance(v, float) and k.startswith(prefix))


def metrics_table(rows: Rows,
                  keys: Sequence[str],
                  intervals: Optional[BootstrapResult] = None,
                  difference_key: Optional[str] = None) -> str:
    """``rows`` as a Markdown table of ``keys`` (the last part of each key as header, 2
    decimals, nan for a missing key). With ``intervals``, each figure carries its bootstrap
    interval, and a last column gives ``difference_key`` minus the reference row, paired."""
    headers = ['model', *[k.split('/')[-1] for k in keys]]
    if intervals is not None and difference_key is not None:
        headers.append(f'{difference_key.split("/")[-1]} − {intervals.reference}')

    def cell(name: str, metrics: dict, key: str) -> str:
        interval = intervals.metric.get(name, {}).get(key) if intervals is not None else None
        return str(interval) if interval is not None else f'{metrics.get(key, float("nan")):.2f}'

    table_rows = []
    for name, metrics in rows:
        row = [name, *[cell(name, metrics, key) for key in keys]]
        if intervals is not None and difference_key is not None:
            difference = intervals.difference.get(name, {}).get(difference_key)
            row.append('' if difference is None else str(difference))
        table_rows.append(row)
    table = markdown_table(headers, table_rows)
    if intervals is None:
        return table
    return (f'{table}\n\n{intervals.level:.0%} bootstrap intervals over {intervals.frames} '
            f'frames ({intervals.rounds} draws; differences paired on the same frames)')
