"""PTQ, layer sensitivity and QAT of SceneSeg from its config (the shared quantization CLI).

    python tools/sceneseg_quantization.py ptq --config C --checkpoint K --calib-batches N \
        --output OUT.pth [--method max|percentile|mse|entropy] [--skip-layers ...]
    python tools/sceneseg_quantization.py sensitivity --config C --checkpoint K \
        --calib-batches N --output report.csv [--budget PTS]
    python tools/sceneseg_quantization.py qat --config C --checkpoint K --calib-batches N \
        --epochs E [--lr LR] --output WORK_DIR [--resume] [--amp]
    torchrun --nproc_per_node=N tools/sceneseg_quantization.py VERB ... --launcher pytorch
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from projects.SceneSeg.quantization.adapter import SCENESEG  # noqa: E402
from tools.quantization_cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:], SCENESEG))
