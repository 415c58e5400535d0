"""Write synthetic road scenes in SceneSeg's layout and colour code.

    python tools/generate_synthetic_roads.py [--root work_dirs/data/synthetic_roads] \
        [--per-dataset 300] [--seed 0]

Three "datasets" of different styles (synthetic_day, synthetic_dusk, synthetic_rain_hood), each
``root/<dataset>/{images,gt_masks}/NNNNNN.png`` at 240 x 480; every 10th file is validation.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from projects.SceneSeg.data.synthetic_roads import STYLES, write_datasets  # noqa: E402
from apis.tool import ToolArgumentParser, run_tool  # noqa: E402
from quantization.fileio import check_output_dir  # noqa: E402


def main(argv=None) -> int:
    parser = ToolArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='work_dirs/data/synthetic_roads')
    parser.add_argument('--per-dataset', type=int, default=300)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.per_dataset < 10:
        parser.error('--per-dataset needs at least 10 scenes (every 10th is validation)')

    def generate():
        check_output_dir(args.root, '--root')
        for name, folder in write_datasets(args.root, {
                name: args.per_dataset
                for name in STYLES
        }, args.seed).items():
            print(f'{name}: {folder}')

    return run_tool(generate)


if __name__ == '__main__':
    sys.exit(main())
