"""Result tables of the quantization flows."""
from typing import List, Sequence, Tuple

from quantization.markdown import markdown_table

Rows = List[Tuple[str, dict]]  # (row name, metrics)


def metric_keys(metrics: dict, prefix: str = '') -> List[str]:
    """The float-valued metric keys starting with ``prefix``, sorted."""
    return sorted(k for k, v in metrics.items() if isinstance(v, float) and k.startswith(prefix))


def metrics_table(rows: Rows, keys: Sequence[str]) -> str:
    """``rows`` as a Markdown table of ``keys`` (the last part of each key as header, 2
    decimals, nan for a missing key)."""
    return markdown_table(['model', *[k.split('/')[-1] for k in keys]],
                          [[name, *[f'{metrics.get(k, float("nan")):.2f}' for k in keys]]
                           for name, metrics in rows])
