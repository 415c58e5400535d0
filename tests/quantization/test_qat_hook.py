"""QATHook inside a real MMEngine Runner on DemoNet (a few seconds of CPU training)."""
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from projects.Demo import DemoNet
from quantization import (QATHook, TensorQuantizer, load_checkpoint_file, load_quantized_checkpoint,
                          load_state_dict_strict, named_quantizers)

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'demo')


def small_cfg(name: str, work_dir: str, **overrides) -> Config:
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.train_dataloader.dataset.num_samples = 64
    cfg.train_dataloader.batch_size = 16
    cfg.val_dataloader.dataset.num_samples = 32
    cfg.test_dataloader = cfg.val_dataloader
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.work_dir = work_dir
    cfg.merge_from_dict(overrides)
    return cfg


@pytest.fixture(scope='module')
def float_checkpoint(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('float'))
    cfg = small_cfg('demonet_shapes.py', work_dir, train_cfg=dict(max_epochs=2, val_interval=2))
    Runner.from_cfg(cfg).train()
    return osp.join(work_dir, 'epoch_2.pth')


def run_qat(float_checkpoint, work_dir, max_epochs, resume=False, **hook_overrides):
    hook = {**dict(type='QATHook', calib_batches=2, calib_method='mse'), **hook_overrides}
    cfg = small_cfg(
        'demonet_shapes_qat.py', work_dir, train_cfg=dict(max_epochs=max_epochs, val_interval=100))
    cfg.custom_hooks = [hook]
    cfg.param_scheduler = []  # constant lr: the same at any max_epochs
    cfg.load_from = None if resume else float_checkpoint
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def test_qat_trains_saves_and_resumes_exactly(float_checkpoint, tmp_path):
    straight = run_qat(float_checkpoint, str(tmp_path / 'straight'), 2)
    model = straight.model
    assert any(isinstance(m, TensorQuantizer) for m in model.modules())
    assert all(q.has_amax for _, q in named_quantizers(model))

    interrupted = str(tmp_path / 'interrupted')
    run_qat(float_checkpoint, interrupted, 1)
    resumed = run_qat(float_checkpoint, interrupted, 2, resume=True)
    a = torch.load(osp.join(tmp_path, 'straight', 'epoch_2.pth'), weights_only=True)['state_dict']
    b = torch.load(osp.join(interrupted, 'epoch_2.pth'), weights_only=True)['state_dict']
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].double(), b[key].double(), atol=1e-6), key
    assert resumed.epoch == 2

    # The final checkpoint rebuilds into a fresh float model and gives the same outputs.
    fresh = DemoNet()
    load_quantized_checkpoint(fresh, osp.join(interrupted, 'epoch_2.pth'))
    x = torch.rand(4, 3, 32, 32)
    resumed.model.eval()
    assert torch.allclose(fresh.eval()(x), resumed.model(x), atol=1e-6)


def test_qat_learns_activation_ranges_saves_and_resumes_exactly(float_checkpoint, tmp_path):
    straight = run_qat(float_checkpoint, str(tmp_path / 'straight'), 2, learn_amax=True,
                       amax_lr=0.01)
    quantizers = dict(named_quantizers(straight.model))
    learned = [name for name, q in quantizers.items() if q.learns_amax]
    assert learned and all(quantizers[n].role != 'weight' for n in learned)
    assert all(not q.learns_amax for q in quantizers.values() if q.role == 'weight')
    amax_group = straight.optim_wrapper.optimizer.param_groups[-1]
    assert (amax_group['lr'], amax_group['weight_decay']) == (0.01, 0.0)
    assert [id(p) for p in amax_group['params']] == [id(quantizers[n].amax) for n in learned]

    def amax_of(path):
        state = torch.load(path, weights_only=True)['state_dict']
        return {n: state[f'{n}.amax'] for n in learned}, state

    epoch1, _ = amax_of(osp.join(tmp_path, 'straight', 'epoch_1.pth'))
    epoch2, a = amax_of(osp.join(tmp_path, 'straight', 'epoch_2.pth'))
    assert all(not torch.equal(epoch1[n], epoch2[n]) for n in learned)  # trained

    interrupted = str(tmp_path / 'interrupted')
    run_qat(float_checkpoint, interrupted, 1, learn_amax=True, amax_lr=0.01)
    resumed = run_qat(float_checkpoint, interrupted, 2, resume=True, learn_amax=True,
                      amax_lr=0.01)
    _, b = amax_of(osp.join(interrupted, 'epoch_2.pth'))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].double(), b[key].double(), atol=1e-6), key
    assert all(q.learns_amax for n, q in named_quantizers(resumed.model) if n in learned)

    # The learned ranges load into a fresh model as fixed amax, with the same outputs.
    fresh = DemoNet()
    load_quantized_checkpoint(fresh, osp.join(interrupted, 'epoch_2.pth'))
    assert not any(q.learns_amax for _, q in named_quantizers(fresh))
    x = torch.rand(4, 3, 32, 32)
    resumed.model.eval()
    assert torch.allclose(fresh.eval()(x), resumed.model(x), atol=1e-6)


def test_qat_tracks_ranges_until_frozen_and_freezes_bn(float_checkpoint, tmp_path):
    runner = run_qat(
        float_checkpoint,
        str(tmp_path / 'track'),
        2,
        freeze_quantizer_epoch=1,
        freeze_bn_epoch=0,
        recipe=dict(fold_bn=False, fuse_relu=False))
    model = runner.model
    assert all(q.amax_momentum is None for _, q in named_quantizers(model))
    assert isinstance(model.stem[1], torch.nn.BatchNorm2d)  # not folded
    epoch1 = torch.load(osp.join(tmp_path, 'track', 'epoch_1.pth'), weights_only=True)['state_dict']
    epoch2 = torch.load(osp.join(tmp_path, 'track', 'epoch_2.pth'), weights_only=True)['state_dict']
    amax_keys = [k for k in epoch1 if k.endswith('input_quantizer.amax')]
    assert all(torch.equal(epoch1[k], epoch2[k]) for k in amax_keys)  # frozen in epoch 2
    assert torch.equal(epoch1['stem.1.running_mean'], epoch2['stem.1.running_mean'])  # BN frozen


def test_hook_calls_directly_with_quantized_checkpoint_skip_calibration(float_checkpoint, tmp_path):
    straight = run_qat(float_checkpoint, str(tmp_path / 'q'), 1)
    checkpoint = torch.load(osp.join(tmp_path, 'q', 'epoch_1.pth'), weights_only=True)
    assert checkpoint['meta']['quantization']['fold_bn'] is True

    class FakeRunner:
        model = DemoNet()
        logger = straight.logger
        train_dataloader = []  # calibration would fail on empty data: it must be skipped
        cfg = {}

    hook = QATHook()
    runner = FakeRunner()
    hook.after_load_checkpoint(runner, checkpoint)
    load_state_dict_strict(runner.model, checkpoint['state_dict'], 'epoch_1.pth')
    hook.before_train(runner)  # no calibration: every amax came from the checkpoint


def test_float_and_quantized_checkpoints_in_the_wrong_model(float_checkpoint, tmp_path):
    quantized = DemoNet()
    from quantization import QuantRecipe
    QuantRecipe().apply(quantized)
    float_state = load_checkpoint_file(float_checkpoint)['state_dict']
    with pytest.raises(ValueError, match='is a float checkpoint .* the model is quantized'):
        load_state_dict_strict(quantized, float_state, float_checkpoint)
    with pytest.raises(ValueError, match='holds no quantization recipe'):
        load_quantized_checkpoint(DemoNet(), float_checkpoint)
    with pytest.raises(ValueError, match='is a quantized checkpoint but the model is float'):
        load_state_dict_strict(DemoNet(), quantized.state_dict(), 'q.pth')
    with pytest.raises(
            KeyError,
            match=r'missing keys \[0.block.0.0.weight.*unexpected keys \[block.0.0.weight'):
        load_state_dict_strict(torch.nn.Sequential(DemoNet()), float_state, float_checkpoint)
    with pytest.raises(
            ValueError,
            match=r'shapes differ for \[block.0.0.weight \(16, 16, 3, 3\) '
            r'vs model \(8, 8, 3, 3\)'):
        load_state_dict_strict(DemoNet(width=8), float_state, float_checkpoint)


class Payload:

    def __reduce__(self):
        return (os.system, ('echo pwned', ))


def test_checkpoint_loading_refuses_unknown_classes_and_reports_files(tmp_path):
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': Payload()}}, evil)
    with pytest.raises(ValueError) as refused:
        load_checkpoint_file(str(evil))
    message = str(refused.value)
    assert re.match(r'refused to load checkpoint .*evil.pth: it holds posix.system, which is not '
                    'on the weights_only allow-list', message), message
    assert 'weights_only=False' not in message and '\x1b' not in message
    assert '\n' not in message
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='cannot load checkpoint .*corrupt.pth'):
        load_checkpoint_file(str(corrupt))
    with pytest.raises(FileNotFoundError, match='missing.pth does not exist'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))


def test_failed_save_leaves_no_file_and_good_save_round_trips(tmp_path, monkeypatch):
    from quantization import QuantRecipe, save_quantized_checkpoint
    import quantization.checkpoint as checkpoint_module
    model = DemoNet().eval()
    recipe = QuantRecipe(skip_layers=['head.3'])
    recipe.apply(model)
    from quantization import CalibrationManager
    CalibrationManager(model, progress=False).calibrate([torch.rand(4, 3, 32, 32)], 1, 'max')
    target = tmp_path / 'ptq.pth'

    def save_then_fail(checkpoint, filename):
        torch.save(checkpoint, filename)
        raise OSError('disk full')

    monkeypatch.setattr(checkpoint_module, 'save_checkpoint', save_then_fail)
    with pytest.raises(OSError, match='disk full'):
        save_quantized_checkpoint(model, str(target), recipe)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_quantized_checkpoint(model, str(target), recipe, meta={'method': 'mse'})
    fresh = DemoNet().eval()
    assert load_quantized_checkpoint(fresh, str(target)).skip_layers == ['head.3']
    assert not fresh.head[3].input_quantizer.is_enabled
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(fresh(x), model(x))


def test_qat_without_trained_weights_is_refused_and_calibration_is_recorded(
        float_checkpoint, tmp_path):
    cfg = small_cfg('demonet_shapes_qat.py', str(tmp_path / 'random'),
                    train_cfg=dict(max_epochs=1, val_interval=100))
    cfg.custom_hooks = [dict(type='QATHook', calib_batches=100, calib_method='max')]
    with pytest.raises(ValueError, match='QATHook: no trained weights to fine-tune'):
        Runner.from_cfg(cfg).train()
    assert not osp.exists(tmp_path / 'random' / 'epoch_1.pth')

    cfg.custom_hooks = [dict(type='QATHook', calib_batches=100, require_trained_weights=False)]
    cfg.work_dir = str(tmp_path / 'allowed')
    Runner.from_cfg(cfg).train()  # the explicit opt-out trains from the initial weights

    runner = run_qat(float_checkpoint, str(tmp_path / 'recorded'), 1, calib_batches=100)
    saved = torch.load(osp.join(runner.work_dir, 'epoch_1.pth'), weights_only=True)
    assert saved['meta']['calibration'] == dict(batches=4, requested=100, method='mse')
