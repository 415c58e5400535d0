import csv

import torch
from torch import nn

from quantization import (CalibrationManager, greedy_skip_search, layer_sensitivity,
                          named_quantizers, plot_sensitivity, quantize_model, save_sensitivity_csv)


def fragile_model():
    """Three Linear layers; ``fragile`` has one huge weight column, so per-row INT8 steps are
    ~0.8 and every other weight of the row rounds to 0."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module('first', nn.Linear(16, 16))
    model.add_module('fragile', nn.Linear(16, 16))
    model.add_module('last', nn.Linear(16, 4))
    with torch.no_grad():
        model.fragile.weight[:, 0] = 100.0
    return model.eval()


def test_fragile_layer_ranks_first_and_greedy_search_skips_it(tmp_path):
    model = fragile_model()
    inputs = torch.randn(256, 16)
    with torch.no_grad():
        first_out = model.first(inputs)
        model.first.bias -= first_out[:, 0].mean()  # input column 0 of `fragile` ~ 0
        model.first.weight[0] *= 1e-3
        reference = model(inputs)
    quantize_model(model)
    CalibrationManager(model, progress=False).calibrate([inputs], 1, method='max')

    def evaluate(m):  # higher is better: negative relative error against the float outputs
        with torch.no_grad():
            return -((m(inputs) - reference).norm() / reference.norm()).item()

    report = layer_sensitivity(model, evaluate, progress=False)
    assert report.float_metric == 0.0
    assert [row.layer for row in report.layers][0] == 'fragile'
    assert report.layers[0].delta_only > 10 * report.layers[1].delta_only
    assert all(q.is_enabled for _, q in named_quantizers(model))  # flags restored

    result = greedy_skip_search(
        model,
        evaluate, [r.layer for r in report.layers],
        budget=0.05,
        float_metric=report.float_metric)
    assert result.skip_layers == ['fragile']
    assert report.float_metric - result.metric <= 0.05
    assert [t['skipped'] for t in result.trace] == [0, 1]

    csv_path, png_path = tmp_path / 'sens.csv', tmp_path / 'sens.png'
    save_sensitivity_csv(report, str(csv_path))
    plot_sensitivity(report, str(png_path), metric_name='-rel. error')
    rows = list(csv.DictReader(open(csv_path)))
    assert [r['layer'] for r in rows] == [r.layer for r in report.layers]
    assert png_path.read_bytes()[:4] == b'\x89PNG'
