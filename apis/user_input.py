"""Checks of what a user hands a tool, done before any heavy work: files exist, configs parse and
hold the keys a tool needs, ``--cfg-options`` are well formed and keep the types they override."""
import argparse
import os.path as osp
from typing import Sequence

from mmengine.config import Config, DictAction

from quantization.errors import UserError

_MISSING = object()


def check_input_file(path: str, kind: str) -> None:
    """Refuse a missing input or a folder given for a file, naming it as ``kind``."""
    if osp.isdir(path):
        raise UserError(f'{kind} {path} is a directory, not a file')
    if not osp.isfile(path):
        raise UserError(f'{kind} {path} does not exist')


def check_at_least(minimum: int, args, *options: str) -> None:
    """Refuse any of the numeric ``options`` (argparse dest names, of ``args`` or a dict) below
    ``minimum``; None is allowed."""
    for option in options:
        value = args.get(option) if isinstance(args, dict) else getattr(args, option, None)
        if value is not None and value < minimum:
            raise UserError(f'--{option.replace("_", "-")} must be at least {minimum}, '
                            f'got {value}')


def check_positive(args, *options: str) -> None:
    """:func:`check_at_least` 1."""
    check_at_least(1, args, *options)


def check_non_negative(args, *options: str) -> None:
    """:func:`check_at_least` 0."""
    check_at_least(0, args, *options)


def read_config(path: str, kind: str = 'config', required: Sequence[str] = ()) -> Config:
    """``Config.fromfile`` with one-line errors (syntax errors, bad ``_base_``, failed
    ``custom_imports``) and the top-level keys ``required`` checked."""
    check_input_file(path, kind)
    try:
        cfg = Config.fromfile(path)
    except Exception as err:  # SyntaxError, ImportError, ... raised by user code in the config
        raise UserError(f'cannot read {kind} {path}: {type(err).__name__}: {err}') from err
    missing = [key for key in required if cfg.get(key) is None]
    if missing:
        raise UserError(f'{kind} {path} has no {", ".join(missing)}')
    return cfg


def _current_value(cfg: Config, dotted_key: str):
    node = cfg
    for part in dotted_key.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif hasattr(node, 'get') and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def merge_cfg_options(cfg: Config, options: dict) -> None:
    """``cfg.merge_from_dict(options)``; a value that replaces a number or a bool must be one."""
    for key, value in options.items():
        current = _current_value(cfg, key)
        if isinstance(current, (bool, int, float)) and isinstance(value, str):
            kind = type(current).__name__
            article = 'an' if kind == 'int' else 'a'
            raise UserError(f'--cfg-options {key}={value}: expected {article} {kind} like the '
                            f'config\'s {current!r}')
    try:
        cfg.merge_from_dict(options)
    except Exception as err:  # a key through a list or a non-dict value
        raise UserError(f'--cfg-options {", ".join(options)}: {err}') from err


class CfgOptionsAction(DictAction):
    """MMEngine's ``DictAction`` that names a malformed ``KEY=VALUE`` instead of crashing."""

    def __call__(self, parser, namespace, values, option_string=None):
        for entry in values:
            key, sep, _ = entry.partition('=')
            if not sep or not key:
                raise argparse.ArgumentError(self, f'expected KEY=VALUE, got {entry!r}')
        super().__call__(parser, namespace, values, option_string)


def add_cfg_options(parser: argparse.ArgumentParser, help_text: str = 'override config keys, '
                    'e.g. train_cfg.max_epochs=2') -> None:
    """The ``--cfg-options KEY=VALUE ...`` argument of mmdet3d's tools."""
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help=help_text)
