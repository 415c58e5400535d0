"""Run a tool (``tools/train.py`` or a quantization CLI) with every rank's trained state saved,
for the multi-process tests: ``python tests/rank_state_run.py OUT_DIR TOOL.py ARGS...`` writes
``OUT_DIR/rank<r>.pth`` (the unwrapped model's state_dict) when ``Runner.train`` returns."""
import os
import os.path as osp
import runpy
import sys

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
_train = Runner.train


def train_and_save(self):
    model = _train(self)
    module = self.model.module if is_model_wrapper(self.model) else self.model
    torch.save(module.state_dict(), osp.join(OUT_DIR, f'rank{self.rank}.pth'))
    return model


if __name__ == '__main__':
    OUT_DIR, tool = sys.argv[1], sys.argv[2]
    os.makedirs(OUT_DIR, exist_ok=True)
    Runner.train = train_and_save
    sys.argv = [tool, *sys.argv[3:]]
    runpy.run_path(osp.join(ROOT, tool), run_name='__main__')
