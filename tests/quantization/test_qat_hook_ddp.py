"""QATHook when the Runner wraps the model in DDP: 2 gloo processes on the CPU, started the way
the tools start them (``apis.init_launcher``, ``apis.distributed_runner_cfg``)."""
import os
import os.path as osp

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from apis import distributed_runner_cfg, init_launcher
from projects.Demo import DemoNet
from quantization import QuantRecipe, named_quantizers

CONFIG = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'demo', 'demonet_shapes_qat.py')


def _worker(rank, world_size, port, float_ckpt, work_dir, result_dir):
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port))
    torch.set_num_threads(1)
    init_launcher('pytorch')
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset.num_samples = 64
    cfg.train_dataloader.batch_size = 8
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=100)
    cfg.custom_hooks = [
        dict(type='QATHook', calib_batches=2, calib_method='entropy', learn_amax=True)
    ]
    cfg.param_scheduler = []
    distributed_runner_cfg(cfg, 'pytorch')
    cfg.work_dir = work_dir
    cfg.load_from = float_ckpt
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    state = {
        'wrapped': is_model_wrapper(model),
        'quantizers': len(dict(named_quantizers(model.module))),
        'learned': sum(q.learns_amax for _, q in named_quantizers(model.module)),
        'amax': {
            name: q.amax.clone()
            for name, q in named_quantizers(model.module)
        },
        'params': {
            name: p.detach().clone()
            for name, p in model.module.named_parameters()
        },
    }
    torch.save(state, osp.join(result_dir, f'rank{rank}.pth'))
    dist.barrier()


def test_qat_hook_under_ddp_keeps_ranks_in_sync(tmp_path):
    float_ckpt = str(tmp_path / 'float.pth')
    torch.manual_seed(0)
    torch.save({'state_dict': DemoNet().state_dict(), 'meta': {}}, float_ckpt)
    port = 29700 + os.getpid() % 200
    mp.start_processes(
        _worker,
        args=(2, port, float_ckpt, str(tmp_path / 'work'), str(tmp_path)),
        nprocs=2,
        start_method='fork')
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=True) for r in range(2)]
    for state in ranks:
        assert state['wrapped'] and state['quantizers'] == 18
        assert state['learned'] == 10  # every activation quantizer; the other 8 are weights
    # Calibration merged both ranks' statistics, and DDP kept the trained weights and the learned
    # activation ranges (rewrapped after they became Parameters) identical.
    for name, amax in ranks[0]['amax'].items():
        assert torch.equal(amax, ranks[1]['amax'][name]), name
    for name, param in ranks[0]['params'].items():
        assert torch.allclose(param, ranks[1]['params'][name], atol=1e-6), name
    folded_untrained = DemoNet()
    folded_untrained.load_state_dict(torch.load(float_ckpt, weights_only=True)['state_dict'])
    QuantRecipe().apply(folded_untrained.eval())
    assert not torch.allclose(ranks[0]['params']['stem.0.weight'], folded_untrained.stem[0].weight)
