"""Cost of the quantization core on SECOND + SECONDFPN at AWML's pillar CenterPoint widths.

All figures are ratios or per-unit times measured in this one run, on this machine:
1. histogram calibration forwards vs plain float forwards over the same batches;
2. amax computation time per quantizer for each method (max, percentile, MSE, entropy);
3. QAT train step (fake quantization, BN folded) vs float train step (with BN).

    python benchmarks/bench_quantization_core.py [--grid 256] [--batches 8] [--steps 4]

The BEV grid defaults to 256 x 256 (AWML uses 1020 x 1020, mmdet3d's nuScenes config 512 x 512);
channels, layer counts and strides are AWML's: SECOND in 32, out [64, 128, 256], layers [3, 5, 5],
strides [1, 2, 2]; SECONDFPN out [128, 128, 128], upsample strides [0.5, 1, 2].
"""
import argparse
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from quantization import CalibrationManager, QuantRecipe, named_quantizers  # noqa: E402


class SecondBackboneNeck(nn.Module):
    """mmdet3d's SECOND followed by SECONDFPN (which concatenates its three outputs)."""

    def __init__(self):
        super().__init__()
        from mmdet3d.registry import MODELS
        from mmengine.registry import init_default_scope
        init_default_scope('mmdet3d')
        norm_cfg = dict(type='BN', eps=1e-3, momentum=0.01)
        self.backbone = MODELS.build(
            dict(
                type='SECOND',
                in_channels=32,
                out_channels=[64, 128, 256],
                layer_nums=[3, 5, 5],
                layer_strides=[1, 2, 2],
                norm_cfg=norm_cfg,
                conv_cfg=dict(type='Conv2d', bias=False)))
        self.neck = MODELS.build(
            dict(
                type='SECONDFPN',
                in_channels=[64, 128, 256],
                out_channels=[128, 128, 128],
                upsample_strides=[0.5, 1, 2],
                norm_cfg=norm_cfg,
                use_conv_for_no_stride=True,
                upsample_cfg=dict(type='deconv', bias=False)))

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(canvas))[0]


def bev_canvases(count: int, grid: int, seed: int = 0) -> list:
    """(1, 32, grid, grid) pillar canvases with ~10 % occupied cells, like a lidar sweep."""
    generator = torch.Generator().manual_seed(seed)
    canvases = []
    for _ in range(count):
        occupied = torch.rand(1, 1, grid, grid, generator=generator) < 0.1
        canvases.append(torch.randn(1, 32, grid, grid, generator=generator).relu() * occupied)
    return canvases


def randomize_bn(model: nn.Module):
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)


def timed(function, repeats: int = 1) -> float:
    """Median wall time of ``function()`` in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_time(model: nn.Module, batches: list, steps: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    model.train()

    def one_step(batch):
        optimizer.zero_grad()
        model(batch).square().mean().backward()
        optimizer.step()

    one_step(batches[0])  # warm-up
    return statistics.median(timed(lambda b=b: one_step(b)) for b in batches[1:steps + 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--grid', type=int, default=256)
    parser.add_argument('--batches', type=int, default=8)
    parser.add_argument('--steps', type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    batches = bev_canvases(max(args.batches, args.steps + 1), args.grid)
    calib_batches = batches[:args.batches]

    float_model = SecondBackboneNeck()
    randomize_bn(float_model)
    float_model.eval()
    with torch.no_grad():
        float_model(calib_batches[0])  # warm-up
        float_seconds = timed(lambda: [float_model(b) for b in calib_batches])

    quant_model = SecondBackboneNeck()
    quant_model.load_state_dict(float_model.state_dict())
    counts = QuantRecipe().apply(quant_model.eval())
    quantizers = dict(named_quantizers(quant_model))
    histogram_count = sum(q.quant_desc.calib_method == 'histogram' for q in quantizers.values())
    manager = CalibrationManager(quant_model, progress=False)
    calib_seconds = timed(lambda: manager.collect(calib_batches, len(calib_batches)))

    amax_ms = {}
    for method in ('max', 'percentile', 'mse', 'entropy'):
        histogram_quantizers = [
            q for q in quantizers.values() if q.quant_desc.calib_method == 'histogram'
        ]
        seconds = timed(lambda: [q.load_calib_amax(method) for q in histogram_quantizers])
        amax_ms[method] = 1000 * seconds / len(histogram_quantizers)
    manager.compute_amax('mse')  # every quantizer, weights included, for the QAT step

    float_train = SecondBackboneNeck()
    float_train.load_state_dict(float_model.state_dict())
    float_step = train_step_time(float_train, batches, args.steps)
    qat_step = train_step_time(quant_model, batches, args.steps)

    print(f'SECOND + SECONDFPN, BEV grid {args.grid} x {args.grid}, batch 1, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    print(f'recipe: {counts}; {len(quantizers)} quantizers, {histogram_count} with histograms\n')
    print('| figure | value |')
    print('|---|---:|')
    print(f'| float forward, per batch | {1000 * float_seconds / len(calib_batches):.0f} ms |')
    print(f'| histogram calibration forward, per batch | '
          f'{1000 * calib_seconds / len(calib_batches):.0f} ms |')
    print(f'| calibration / float forward time | {calib_seconds / float_seconds:.2f}x |')
    for method, milliseconds in amax_ms.items():
        print(f'| amax per quantizer, {method} | {milliseconds:.1f} ms |')
    print(f'| amax for 60 quantizers, slowest method | '
          f'{60 * max(amax_ms.values()) / 1000:.2f} s |')
    print(f'| float train step (BN) | {1000 * float_step:.0f} ms |')
    print(f'| QAT train step (fake quant, BN folded) | {1000 * qat_step:.0f} ms |')
    print(f'| QAT / float train step time | {qat_step / float_step:.2f}x |')


if __name__ == '__main__':
    main()
