"""What the demo scripts share: step banners, training a config, result tables."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.runner import Runner

from quantization.bootstrap import Interval
from quantization.markdown import markdown_table as table_of


def step(message: str):
    print(f'\n==> {message}', flush=True)


def train(config: str,
          work_dir: str,
          load_from: Optional[str] = None,
          epochs: Optional[int] = None,
          lr: Optional[float] = None,
          with_qat: bool = True,
          log_level: Optional[str] = None,
          seed: Optional[int] = None) -> Runner:
    """Train ``config`` in ``work_dir``; ``epochs`` also sets the validation interval, ``lr`` the
    optimizer's learning rate, ``with_qat=False`` drops its QATHook (a float control run),
    ``seed`` replaces ``randomness.seed``."""
    cfg = Config.fromfile(config)
    if seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    cfg.work_dir = work_dir
    cfg.load_from = load_from
    if epochs is not None:
        cfg.train_cfg.max_epochs = epochs
        cfg.train_cfg.val_interval = epochs
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    if not with_qat:
        cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h['type'] != 'QATHook']
    if log_level is not None:
        cfg.log_level = log_level
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def train_float(config: str, demo_work_dir: str) -> str:
    """Train the float model of ``config`` in ``demo_work_dir/float_training``; returns the last
    epoch's checkpoint."""
    runner = train(config, osp.join(demo_work_dir, 'float_training'))
    return osp.join(runner.work_dir, f'epoch_{runner.max_epochs}.pth')


def markdown_table(rows: Sequence[dict], keys: Sequence[str]) -> str:
    """Rows ``{'model': name, key: value, ...}`` as a Markdown table of ``keys`` (numbers with 2
    decimals, text as it is)."""

    def cell(value) -> str:
        return value if isinstance(value, str) else f'{value:.2f}'

    return table_of(['model', *keys], [[r['model'], *[cell(r.get(k, '')) for k in keys]]
                                       for r in rows])


def interval_rows(intervals: dict, labels: Dict[str, str], keys: Sequence[str],
                  headline: str) -> List[dict]:
    """Table rows from a bootstrap result (``dataclasses.asdict`` of a BootstrapResult, or a
    deploy report's ``intervals``): ``labels`` maps its model names to row labels; ``keys``
    (short names) get their values, ``headline`` (a full key) its interval and the paired
    difference from the result's reference."""
    rows = []
    for name, label in labels.items():
        metric = intervals['metric'][name]
        row = {'model': label, **{key.split('/')[-1]: value['value']
                                  for key, value in metric.items() if key.split('/')[-1] in keys}}
        row[f'{headline.split("/")[-1]} [95% interval]'] = str(Interval(**metric[headline]))
        difference = intervals['difference'].get(name, {}).get(headline)
        row['difference [95% interval]'] = (
            f'{Interval(**difference)} vs {intervals["reference"]}' if difference else '')
        rows.append(row)
    return rows
