"""PTQ, layer sensitivity and QAT of a pillar CenterPoint (mmdet3d) from its config.

    python tools/centerpoint_quantization.py ptq --config C --checkpoint K --calibrate-batches N \
        --output OUT.pth [--method max|percentile|mse|entropy] [--skip-layers ...]
    python tools/centerpoint_quantization.py sensitivity --config C --checkpoint K \
        --calibrate-batches N --output report.csv [--budget PTS]
    python tools/centerpoint_quantization.py qat --config C --checkpoint K --calibrate-batches N \
        --epochs E [--lr LR] --output WORK_DIR [--resume]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from projects.CenterPoint.quantization import DEFAULT_SKIP_LAYERS  # noqa: E402
from projects.CenterPoint.quantization.adapter import CENTERPOINT  # noqa: E402
from quantization.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:], CENTERPOINT, DEFAULT_SKIP_LAYERS))
