"""What the amax methods make of one CenterPoint layer's input histogram.

Calibrates the shipped small CenterPoint (every layer INT8, the recipe's histograms) on the first
``--calib-batches`` training batches and prints, for each ``--layer``: the share of values in
the first bin, percentiles of |x|, and the amax of each method, with entropy also on the
histogram without its first bin (zeros and the smallest values left out).

    python benchmarks/centerpoint_histogram.py --calib-batches 4 \\
        --layer pts_backbone.blocks.0.0 pts_backbone.blocks.1.0
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from apis.inputs import load_inputs  # noqa: E402
from apis.ptq import calibrate  # noqa: E402
from projects.CenterPoint.quantization.adapter import CENTERPOINT  # noqa: E402
from quantization.calib.reductions import AMAX_REDUCTIONS  # noqa: E402
from tools.centerpoint_demo import CONFIG, SHIPPED_CHECKPOINT  # noqa: E402

PERCENTILES = (50, 90, 99, 99.9, 99.99)


def describe(name: str, calibrator) -> str:
    """One layer's histogram in two lines: shares and percentiles, then each method's amax."""
    counts = calibrator.calib_hist.cpu()
    used = int(torch.nonzero(counts).max()) + 1
    counts, edges = counts[:used], calibrator.bin_edges[:used + 1]
    cdf = torch.cumsum(counts.double(), 0) / counts.sum()
    quantiles = [float(edges[int(torch.searchsorted(cdf, torch.tensor([p / 100.],
                                                                      dtype=torch.float64))) + 1])
                 for p in PERCENTILES]
    grid = dict(num_bits=calibrator.num_bits, unsigned=calibrator.unsigned)
    amax = {m: AMAX_REDUCTIONS[m](counts, edges, **(grid if m in ('mse', 'entropy') else {}))
            for m in AMAX_REDUCTIONS}
    no_first = counts.clone()
    no_first[0] = 0
    amax['entropy without the first bin'] = AMAX_REDUCTIONS['entropy'](no_first, edges, **grid)
    shares = ', '.join(f'p{p:g} {q:.3g}' for p, q in zip(PERCENTILES, quantiles))
    methods = ', '.join(f'{m} {a:.3g}' for m, a in amax.items())
    return (f'{name}: {100 * float(counts[0]) / float(counts.sum()):.1f} % of the values in the '
            f'first bin (width {float(edges[1]):.3g}); |x| {shares}\n  amax: {methods}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calib-batches', type=int, default=4)
    parser.add_argument('--layer', nargs='+', default=['pts_backbone.blocks.0.0'])
    args = parser.parse_args(argv)
    inputs = load_inputs(CONFIG, SHIPPED_CHECKPOINT, CENTERPOINT, [], 'train')
    calibrate(inputs, args.calib_batches, 'mse')
    for name in args.layer:
        print(describe(name, inputs.model.get_submodule(name).input_quantizer._calibrator))
    return 0


if __name__ == '__main__':
    sys.exit(main())
