"""Evaluate a float or quantized checkpoint with the config's test dataloader and evaluator.

    python tools/test.py CONFIG CHECKPOINT [--cfg-options ...]

A quantized checkpoint (from PTQ, QATHook or the quantization CLI) is rebuilt from the recipe in
its metadata before loading; a float one loads as it is. Both load with weights_only=True.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from quantization import (evaluate_model, load_checkpoint_file,  # noqa: E402
                          load_quantized_checkpoint, load_state_dict_strict)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    try:
        for kind, path in (('config', args.config), ('checkpoint', args.checkpoint)):
            if not osp.isfile(path):
                raise FileNotFoundError(f'{kind} {path} does not exist')
        cfg = Config.fromfile(args.config)
        cfg.merge_from_dict(args.cfg_options)
        if cfg.get('default_scope'):
            init_default_scope(cfg.default_scope)
        model = MODELS.build(cfg.model)
        checkpoint = load_checkpoint_file(args.checkpoint)
        if checkpoint.get('meta', {}).get('quantization'):
            load_quantized_checkpoint(model, args.checkpoint)
            kind = 'quantized'
        else:
            load_state_dict_strict(model, checkpoint.get('state_dict', checkpoint),
                                   args.checkpoint)
            kind = 'float'
        metrics = evaluate_model(model, Runner.build_dataloader(cfg.test_dataloader, seed=0),
                                 cfg.test_evaluator, progress=True)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f'error: {err.args[0] if isinstance(err, KeyError) and err.args else err}',
              file=sys.stderr)
        return 2
    print(f'| {kind} checkpoint | metric | value |\n|---|---|---:|')
    for key, value in metrics.items():
        print(f'| {osp.basename(args.checkpoint)} | {key} | {value:.4f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
