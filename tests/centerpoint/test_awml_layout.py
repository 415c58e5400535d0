"""Installed beside TIER IV's AWML: with AWML's tree on the path (a stand-in laid out like it:
``projects/CenterPoint/models/`` registering its own CenterHead with ``force=True``, no
``__init__.py`` in ``projects/`` or ``projects/CenterPoint/``), AWML's
``projects.CenterPoint.models`` and our ``projects.CenterPoint.*`` both import, in either order
on ``sys.path``, and our PTQ runs on a model built with AWML's head."""
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

AWML_MODELS = '''"""Stand-in for AWML's projects/CenterPoint/models (force=True registration)."""
from mmdet3d.models.dense_heads import CenterHead as _MMDet3DCenterHead
from mmdet3d.registry import MODELS


@MODELS.register_module(force=True)
class CenterHead(_MMDet3DCenterHead):
    """AWML's CenterHead, registered over mmdet3d's."""
'''

IMPORTS = '''
import projects.CenterPoint.models as theirs
import projects.CenterPoint.quantization as ours
import projects.CenterPoint.data, projects.CenterPoint.deploy, projects.CenterPoint.metric
import projects.SceneSeg
print('theirs', theirs.__file__)
print('ours', ours.__file__)
'''


@pytest.fixture(scope='module')
def awml(tmp_path_factory):
    root = tmp_path_factory.mktemp('awml')
    models = root / 'projects' / 'CenterPoint' / 'models'
    models.mkdir(parents=True)
    (models / '__init__.py').write_text(AWML_MODELS)
    (root / 'projects' / 'CenterPoint' / 'configs').mkdir()  # AWML keeps configs here
    return root


def python(code: str, path: list, cwd) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, path)))
    done = subprocess.run([sys.executable, '-c', code], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout


@pytest.mark.parametrize('awml_first', [True, False])
def test_awml_and_our_packages_import_side_by_side(awml, tmp_path, awml_first):
    path = [awml, ROOT] if awml_first else [ROOT, awml]
    out = python(IMPORTS, path, tmp_path)
    assert f'theirs {awml}' in out and f'ours {ROOT}' in out


def test_ptq_on_a_model_with_awml_modules(awml, tiny, tmp_path):
    config = tmp_path / 'awml_cfg.py'
    config.write_text(f"_base_ = ['{tiny['config']}']\n"
                      "custom_imports = dict(imports=['quantization', 'projects.CenterPoint.data', "
                      "'projects.CenterPoint.metric', 'projects.CenterPoint.quantization', "
                      "'projects.CenterPoint.models'], allow_failed_imports=False)\n")
    code = f'''
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet3d.registry import MODELS
from projects.CenterPoint.quantization.adapter import CENTERPOINT
from tools.quantization_cli import run
result = run(['ptq', '--config', '{config}', '--checkpoint', '{tiny['checkpoint']}',
              '--calib-batches', '1', '--method', 'max', '--output', '{tmp_path / 'ptq.pth'}'],
             CENTERPOINT)
cfg = Config.fromfile('{config}')
init_default_scope('mmdet3d')
print('head from', type(MODELS.build(cfg.model).pts_bbox_head).__module__)
'''
    out = python(code, [awml, ROOT], tmp_path)
    assert 'head from projects.CenterPoint.models' in out
    assert (tmp_path / 'ptq.pth').is_file() and 'saved ' in out
