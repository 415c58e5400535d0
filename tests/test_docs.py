"""The README and docs/ name files, configs and pages that exist."""
import glob
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAGES = [osp.join(ROOT, 'README.md')] + sorted(glob.glob(osp.join(ROOT, 'docs', '*.md')))
# repository paths as the pages write them: configs/..., tools/..., and so on
PATH = re.compile(r'(?<![\w/.])((?:configs|tools|benchmarks|projects|quantization|deployment|apis|'
                  r'tests)/[\w/.*{},-]*[\w*}])')


def expand(path: str) -> list:
    """``a/{b,c}.py`` -> ``['a/b.py', 'a/c.py']`` (one brace group, as the pages use)."""
    match = re.search(r'\{([^}]*)\}', path)
    if not match:
        return [path]
    return [path[:match.start()] + part + path[match.end():] for part in match.group(1).split(',')]


@pytest.mark.parametrize('page', PAGES, ids=lambda p: osp.relpath(p, ROOT))
def test_every_repository_path_named_exists(page):
    text = open(page, encoding='utf-8').read()
    missing = []
    for found in sorted(set(PATH.findall(text))):
        for path in expand(found):
            if not glob.glob(osp.join(ROOT, path)):
                missing.append(path)
    assert not missing, f'{osp.relpath(page, ROOT)} names paths that do not exist: {missing}'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: osp.relpath(p, ROOT))
def test_every_relative_link_resolves(page):
    text = open(page, encoding='utf-8').read()
    links = [link for link in re.findall(r'\]\(([^)#]+)\)', text) if '://' not in link]
    base = osp.dirname(page)
    assert [link for link in links if not osp.exists(osp.join(base, link))] == []


def test_readme_first_screen_starts_from_the_users_config():
    lines = open(PAGES[0], encoding='utf-8').read().splitlines()
    headings = [line for line in lines[:80] if line.startswith('## ')]
    assert headings[:3] == ['## Set-up: two commands', '## Your own config', '## Documentation']
