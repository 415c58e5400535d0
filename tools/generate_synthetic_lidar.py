"""Write synthetic lidar scenes in mmdet3d's format (points .bin + v2 info .pkl).

    python tools/generate_synthetic_lidar.py [--root work_dirs/data/synthetic_lidar]
                                             [--train 400] [--val 50] [--test 0] [--seed 0]
                                             [--extent 24] [--only test]

``--test N`` adds a split of N more scenes (``infos_test.pkl``), numbered after train and val,
for evaluations that need more frames than the demo's validation set; ``--only test`` writes
just that split (train and val keep their scenes).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from projects.CenterPoint.data.synthetic_lidar import SceneConfig, write_dataset  # noqa: E402
from apis.tool import ToolArgumentParser, run_tool  # noqa: E402
from quantization.fileio import check_output_dir  # noqa: E402


def main(argv=None) -> int:
    parser = ToolArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='work_dirs/data/synthetic_lidar')
    parser.add_argument('--train', type=int, default=400)
    parser.add_argument('--val', type=int, default=50)
    parser.add_argument('--test', type=int, default=0, help='scenes of an extra test split')
    parser.add_argument('--only', nargs='+', choices=['train', 'val', 'test'], default=None,
                        help='write only these splits')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--extent', type=float, default=SceneConfig.extent, help='objects within |x|, |y| < m')
    args = parser.parse_args(argv)
    if args.train < 1 or args.val < 1:
        parser.error('--train and --val need at least one scene each')
    if args.extent <= 15:
        parser.error(f'--extent {args.extent} m leaves no room for walls (placed beyond 15 m)')

    def generate():
        check_output_dir(args.root, '--root')
        splits = {'train': args.train, 'val': args.val}
        if args.test:
            splits['test'] = args.test
        for split, path in write_dataset(args.root, splits, args.seed,
                                         SceneConfig(extent=args.extent), args.only).items():
            print(f'{split}: {path}')

    return run_tool(generate)


if __name__ == '__main__':
    sys.exit(main())
