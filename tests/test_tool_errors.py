"""Every tool's bad inputs, table-driven: exit code 2, exactly one ``error: ...`` line naming the
file, key, layer or option at fault, and nothing written under the output path."""
import copy
import errno
import os
import os.path as osp
import shutil
import tempfile

import pytest
import torch
from torch import nn

from projects.CenterPoint.quantization.adapter import CENTERPOINT
from projects.SceneSeg.quantization.adapter import SCENESEG
from quantization import OutputError, QuantRecipe, save_quantized_checkpoint
from tools.quantization_cli import main as cli_main
from tests.conftest import ROOT
from tools import (deploy, generate_synthetic_lidar, quantize_demo, sceneseg_benchmark, test,
                   train)

DEMO = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes.py')
DEMO_QAT = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes_qat.py')
DEMO_DEPLOY = osp.join(ROOT, 'configs', 'demo', 'deploy_demonet.py')


def centerpoint(argv):
    return cli_main(argv, CENTERPOINT)


def sceneseg(argv):
    return cli_main(argv, SCENESEG)


class Payload:

    def __reduce__(self):
        return (os.system, ('echo pwned', ))


def unwritable_dir(tmp_path) -> str:
    """A folder this process cannot write in: chmod 555, or (as root, who ignores modes) a
    read-only system folder."""
    folder = tmp_path / 'read_only'
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (str(folder), '/sys', '/proc/1'):
        try:
            tempfile.TemporaryFile(dir=candidate).close()
        except OSError:
            return candidate
    pytest.skip('no unwritable folder on this machine')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Bad inputs made once: a config with a syntax error, one without a model, an unloadable
    and a malicious checkpoint, a quantized checkpoint, a plain file, an ONNX of another model."""
    folder = tmp_path_factory.mktemp('bad_inputs')
    paths = {}
    paths['syntax'] = folder / 'syntax.py'
    paths['syntax'].write_text('model = dict(type="DemoNet"\n')
    paths['no_model'] = folder / 'no_model.py'
    paths['no_model'].write_text('train_cfg = dict(max_epochs=1)\n')
    paths['garbage'] = folder / 'garbage.pth'
    paths['garbage'].write_bytes(b'\x00not a checkpoint' * 100)
    paths['evil'] = folder / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': Payload()}}, paths['evil'])
    paths['file'] = folder / 'a_file'
    paths['file'].write_text('x')
    other = nn.Conv2d(3, 5, 1)
    paths['other_onnx'] = folder / 'other.onnx'
    torch.onnx.export(other, (torch.rand(1, 3, 8, 8), ), str(paths['other_onnx']),
                      input_names=['inputs'], dynamo=False)
    return {k: str(v) for k, v in paths.items()}


def quantized_checkpoint(tiny) -> str:
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet3d')  # earlier tests may have left another scope current
    model = MODELS.build(tiny['cfg'].model)
    recipe = CENTERPOINT.make_recipe(model, CENTERPOINT.default_skip_layers)
    recipe.apply(model)
    path = str(tiny['folder'] / 'quantized_for_errors.pth')
    save_quantized_checkpoint(model, path, recipe)
    return path


def cases(files, tiny, tiny_roads, tmp_path):
    """``(id, tool main, argv, text the line must hold, path that must not exist)``."""
    out = str(tmp_path / 'out')
    cp = ['--config', tiny['config'], '--checkpoint', tiny['checkpoint']]
    read_only = unwritable_dir(tmp_path)
    no_mask = tmp_path / 'no_mask'
    shutil.copytree(tiny_roads['folder'] / 'data', no_mask)
    mask = sorted((no_mask / 'synthetic_day' / 'gt_masks').iterdir())[0]
    mask.unlink()
    no_mask_cfg = copy.deepcopy(tiny_roads['cfg'])
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        no_mask_cfg[key].dataset.data_root = str(no_mask)
    no_mask_cfg.dump(str(tmp_path / 'no_mask.py'))
    return [
        ('train missing config', train.main, ['nope.py'], 'config nope.py does not exist', None),
        ('train syntax error', train.main, [files['syntax']], 'cannot read config', None),
        ('train no model', train.main, [files['no_model']], 'has no model', None),
        ('train missing --load-from', train.main, [DEMO, '--work-dir', out, '--load-from',
                                                   'x.pth'], '--load-from x.pth does not exist',
         out),
        ('train unloadable --load-from', train.main,
         [DEMO, '--work-dir', out, '--load-from', files['garbage']],
         'cannot load checkpoint ' + files['garbage'], out),
        ('train unloadable --resume', train.main,
         [DEMO, '--work-dir', out, '--resume', files['garbage']],
         'cannot load checkpoint ' + files['garbage'], out),
        ('train refused class', train.main,
         [DEMO, '--work-dir', out, '--load-from', files['evil']], 'it holds posix.system', out),
        ('train malformed --cfg-options', train.main,
         [DEMO, '--work-dir', out, '--cfg-options', 'train_cfg.max_epochs'],
         "expected KEY=VALUE, got 'train_cfg.max_epochs'", out),
        ('train --cfg-options type', train.main,
         [DEMO, '--work-dir', out, '--cfg-options', 'train_cfg.max_epochs=ten'],
         'train_cfg.max_epochs=ten: expected an int', out),
        ('train --work-dir is a file', train.main, [DEMO, '--work-dir', files['file']],
         'is a file, not a directory', None),
        ('train read-only --work-dir', train.main,
         [DEMO, '--work-dir', osp.join(read_only, 'w')], 'cannot write in', None),
        ('train --auto-scale-lr without base', train.main,
         [DEMO, '--auto-scale-lr', '--work-dir', out], 'has no auto_scale_lr.base_batch_size',
         out),
        ('train --launcher pytorch outside torchrun', train.main,
         [DEMO, '--launcher', 'pytorch', '--work-dir', out], 'RANK, WORLD_SIZE not set', out),
        ('test --show-dir without a visualization hook', test.main,
         [DEMO, tiny['checkpoint'], '--show-dir', out], 'has no default_hooks.visualization',
         out),
        ('ptq unknown --device', centerpoint,
         ['ptq', *cp, '--device', 'nonsense', '--output', osp.join(out, 'p.pth')],
         '--device nonsense', out),
        ('qat --launcher slurm outside srun', centerpoint,
         ['qat', *cp, '--launcher', 'slurm', '--output', out],
         'SLURM_PROCID, SLURM_NTASKS not set', out),
        ('train QAT without weights', train.main, [DEMO_QAT, '--work-dir', out, '--resume'],
         'no trained weights to start from', out),
        ('test syntax error', test.main, [files['syntax'], tiny['checkpoint']],
         'cannot read config', None),
        ('test no model', test.main, [files['no_model'], tiny['checkpoint']], 'has no model',
         None),
        ('test missing checkpoint', test.main, [DEMO, 'none.pth'],
         'checkpoint none.pth does not exist', None),
        ('test wrong model', test.main, [DEMO, tiny['checkpoint']], 'does not fit DemoNet', None),
        ('deploy missing config', deploy.main,
         ['nope.py', DEMO, tiny['checkpoint'], '--work-dir', out],
         'deploy config nope.py does not exist', out),
        ('deploy --work-dir is a file', deploy.main,
         [DEMO_DEPLOY, DEMO, files['garbage'], '--work-dir', files['file']],
         'is a file, not a directory', None),
        ('deploy bad --cfg-options', deploy.main,
         [DEMO_DEPLOY, DEMO, tiny['checkpoint'], '--work-dir', out, '--cfg-options', '=1'],
         "expected KEY=VALUE, got '=1'", out),
        ('ptq unknown --skip-layers', centerpoint,
         ['ptq', *cp, '--output', osp.join(out, 'p.pth'), '--skip-layers', 'no_such_layer'],
         "['no_such_layer'] match no quantizer", out),
        ('ptq --output is a directory', centerpoint,
         ['ptq', *cp, '--output', str(tmp_path)], 'is a directory; give a file name', None),
        ('ptq read-only --output', centerpoint,
         ['ptq', *cp, '--output', osp.join(read_only, 'p.pth')], 'cannot write in', None),
        ('ptq --calib-batches 0', centerpoint,
         ['ptq', *cp, '--calib-batches', '0', '--output', osp.join(out, 'p.pth')],
         '--calib-batches must be at least 1', out),
        ('ptq --bootstrap-rounds -1', centerpoint,
         ['ptq', *cp, '--bootstrap-rounds', '-1', '--output', osp.join(out, 'p.pth')],
         '--bootstrap-rounds must be at least 0', out),
        ('ptq --adaround -1', centerpoint,
         ['ptq', *cp, '--adaround', '-1', '--output', osp.join(out, 'p.pth')],
         '--adaround must be at least 0', out),
        ('ptq --per-layer-amax with two methods', centerpoint,
         ['ptq', *cp, '--per-layer-amax', '1', '--method', 'max', 'mse', '--output',
          osp.join(out, 'p.pth')], "--per-layer-amax sets each layer's amax: give one", out),
        ('ptq --learn-ranges -1', centerpoint,
         ['ptq', *cp, '--learn-ranges', '-1', '--output', osp.join(out, 'p.pth')],
         '--learn-ranges must be at least 0', out),
        ('qat --range-steps 0', centerpoint,
         ['qat', *cp, '--learn-ranges', '1', '--range-steps', '0', '--output',
          osp.join(out, 'qat')], '--range-steps must be at least 1', out),
        ('ptq quantized checkpoint', centerpoint,
         ['ptq', '--config', tiny['config'], '--checkpoint', quantized_checkpoint(tiny),
          '--output', osp.join(out, 'p.pth')], 'is already quantized', out),
        ('ptq unknown method', centerpoint, ['ptq', *cp, '--method', 'kl', '--output', out],
         "invalid choice: 'kl'", out),
        ('sensitivity --eval-batches 0', centerpoint,
         ['sensitivity', *cp, '--eval-batches', '0', '--output', osp.join(out, 's.csv')],
         '--eval-batches must be at least 1', out),
        ('sensitivity unknown --layers', centerpoint,
         ['sensitivity', *cp, '--layers', 'nowhere*', '--output', osp.join(out, 's.csv')],
         "['nowhere*'] match no quantizer", out),
        ('qat --output is a file', centerpoint, ['qat', *cp, '--output', files['file']],
         'is a file, not a directory', None),
        ('qat --epochs 0', centerpoint, ['qat', *cp, '--epochs', '0', '--output', out],
         '--epochs must be at least 1', out),
        ('sceneseg image without mask', sceneseg,
         ['ptq', '--config', str(tmp_path / 'no_mask.py'), '--checkpoint',
          tiny_roads['checkpoint'], '--output', osp.join(out, 'p.pth')],
         f'has no mask {mask}', out),
        ('benchmark ONNX of another model', sceneseg_benchmark.main,
         [tiny_roads['config'], '--checkpoint', tiny_roads['checkpoint'], '--onnx',
          f'other={files["other_onnx"]}', '--work-dir', out], 'is not a SceneSeg graph', out),
        ('benchmark malformed --onnx', sceneseg_benchmark.main,
         [tiny_roads['config'], '--checkpoint', tiny_roads['checkpoint'], '--onnx', 'x.onnx',
          '--work-dir', out], "--onnx takes NAME=PATH, got 'x.onnx'", out),
        ('generator --root is a file', generate_synthetic_lidar.main,
         ['--root', files['file'], '--train', '1', '--val', '1'], 'is a file, not a directory',
         None),
        ('generator --train 0', generate_synthetic_lidar.main, ['--root', out, '--train', '0'],
         '--train and --val need at least one scene', out),
        ('demo --work-dir is a file', quantize_demo.main, ['--work-dir', files['file']],
         'is a file, not a directory', None),
    ]


def exit_code(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argument errors
        return stop.code


def test_every_bad_input_is_one_line_and_exit_2(files, tiny, tiny_roads, tmp_path, capsys):
    table = cases(files, tiny, tiny_roads, tmp_path)
    assert len(table) >= 25
    failures = []
    for name, main, argv, expected, must_not_exist in table:
        code = exit_code(main, argv)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        problems = []
        if code != 2:
            problems.append(f'exit {code}')
        if len(lines) != 1 or not lines[0].startswith('error: '):
            problems.append(f'stderr {lines[-3:]}')
        elif expected not in lines[0]:
            problems.append(f'line {lines[0]!r} lacks {expected!r}')
        if 'weights_only=False' in captured.err or 'weights_only` set to `False' in captured.err:
            problems.append('advises turning weights_only off')
        if 'Evaluating' in captured.err + captured.out or '| float |' in captured.out:
            problems.append('heavy work ran before the error')
        if must_not_exist and osp.exists(must_not_exist):
            problems.append(f'{must_not_exist} was created')
            shutil.rmtree(must_not_exist)
        if problems:
            failures.append(f'{name}: {"; ".join(problems)}')
    assert not failures, '\n'.join(failures)


def test_disk_full_in_ptq_and_the_python_api(tiny, tmp_path, monkeypatch, capsys):
    """ENOSPC half-way through a checkpoint write: one line naming the file and the reason, no
    file under the final name, no temporary file, no folder left behind."""
    import quantization.checkpoint as checkpoint_module

    def full_disk(checkpoint, filename):
        with open(filename, 'wb') as partial:
            partial.write(b'x' * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(checkpoint_module, 'save_checkpoint', full_disk)
    target = tmp_path / 'new' / 'ptq.pth'
    with pytest.raises(OutputError, match=f'cannot write {target}: no space left on device'):
        save_quantized_checkpoint(nn.Linear(2, 2), str(target), QuantRecipe())
    assert not (tmp_path / 'new').exists()

    assert centerpoint([
        'ptq', '--config', tiny['config'], '--checkpoint', tiny['checkpoint'],
        '--calib-batches', '1', '--output', str(target)
    ]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == f'error: cannot write {target}: no space left on device'
    assert not (tmp_path / 'new').exists()
