import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from projects.Demo import DemoNet, SyntheticShapes
from quantization import (CalibrationManager, HistogramCalibrator, MaxCalibrator, QuantRecipe,
                          named_quantizers)


def quantized_demo(seed=0):
    torch.manual_seed(seed)
    model = DemoNet().eval()
    QuantRecipe().apply(model)
    return model


def loader(batch_size, **kwargs):
    return DataLoader(SyntheticShapes(32, size=16, seed=3), batch_size=batch_size, **kwargs)


def test_zero_batches_and_empty_data_are_refused():
    manager = CalibrationManager(quantized_demo(), progress=False)
    with pytest.raises(ValueError, match='at least one batch'):
        manager.collect(loader(8), 0)
    with pytest.raises(ValueError, match='saw 0 batches'):
        manager.collect([], 4)


def test_float_model_is_refused():
    with pytest.raises(ValueError, match='no enabled quantizer'):
        CalibrationManager(DemoNet())


def test_calibration_sets_every_amax_and_restores_modes():
    model = quantized_demo().train()
    seen = CalibrationManager(model, progress=False).calibrate(loader(8), 3, method='entropy')
    assert seen == 3 and model.training
    for name, quantizer in named_quantizers(model):
        assert quantizer.has_amax, name
        assert not quantizer.is_calibrating
    model.eval()(next(iter(loader(8)))['inputs'])  # quantized forward works


def nan_forward(model, batch):
    model(batch['inputs'] * float('nan'))


def test_nan_activation_names_the_quantizer():
    manager = CalibrationManager(quantized_demo(), forward_fn=nan_forward, progress=False)
    with pytest.raises(ValueError, match='stem.0.input_quantizer: calibration input holds NaN'):
        manager.collect(loader(8), 1)


def amax_by_name(model):
    return {name: q.amax.clone() for name, q in named_quantizers(model)}


def _ddp_worker(rank, world_size, port, method, result_path):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        model = quantized_demo()
        # rank r sees batches r, r + 2, ...: together exactly the single-process batches
        batches = [b for i, b in enumerate(loader(4)) if i % world_size == rank]
        seen = CalibrationManager(model, progress=False).calibrate(batches, 8, method=method)
        assert seen == 8  # all ranks together: 4 batches each
        if rank == 0:
            torch.save(amax_by_name(model), result_path)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('method', ['max', 'entropy', 'mse'])
def test_ddp_calibration_equals_single_process(tmp_path, method):
    single = quantized_demo()
    CalibrationManager(single, progress=False).calibrate(loader(4), 8, method=method)
    result_path = str(tmp_path / 'amax.pth')
    port = 29500 + os.getpid() % 1000
    mp.start_processes(
        _ddp_worker, args=(2, port, method, result_path), nprocs=2, start_method='fork')
    distributed = torch.load(result_path, weights_only=True)
    expected = amax_by_name(single)
    assert distributed.keys() == expected.keys()
    for name, amax in expected.items():
        assert torch.equal(distributed[name], amax), name


def _no_data_worker(rank, world_size, port, result_path):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        model = quantized_demo()
        # rank 1's shard is empty: its max calibrators never see data
        batches = list(loader(4))[:1] if rank == 0 else []
        seen = CalibrationManager(model, progress=False).calibrate(batches, 2, method='max')
        outcome = {'seen': seen, 'amax': amax_by_name(model)}
        # nothing on any rank: every rank raises, naming the quantizer (none waits forever)
        manager = CalibrationManager(quantized_demo(), progress=False)
        every = dict(manager.quantizers)
        for kind, calibrator in (('histogram', HistogramCalibrator), ('max', MaxCalibrator)):
            manager.quantizers = {
                name: q
                for name, q in every.items() if isinstance(q.calibrator, calibrator)
            }
            try:
                manager.compute_amax('max')
            except ValueError as err:
                outcome[kind] = str(err)
        torch.save(outcome, f'{result_path}.{rank}')
    finally:
        dist.destroy_process_group()


def test_a_rank_without_data_takes_the_others_amax_and_none_hangs(tmp_path):
    single = quantized_demo()
    CalibrationManager(single, progress=False).calibrate(list(loader(4))[:1], 1, method='max')
    result_path = str(tmp_path / 'outcome')
    port = 29500 + (os.getpid() + 7) % 1000
    context = mp.start_processes(
        _no_data_worker, args=(2, port, result_path), nprocs=2, start_method='fork', join=False)
    deadline = time.time() + 120
    while not context.join(timeout=5):  # True once every rank has exited
        assert time.time() < deadline, 'a rank hung'
    outcomes = [torch.load(f'{result_path}.{rank}', weights_only=True) for rank in range(2)]
    expected = amax_by_name(single)
    for outcome in outcomes:
        assert outcome['seen'] == 1
        for name, amax in expected.items():
            assert torch.equal(outcome['amax'][name], amax), name
        assert outcome['histogram'] == ('stem.0.input_quantizer: calibrator saw no data; run '
                                        'calibration first or pass strict=False')
        assert outcome['max'] == 'stem.0.weight_quantizer: no rank collected calibration data'
