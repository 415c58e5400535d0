"""Where a training run starts: the resume rule shared by ``tools/train.py`` and the QAT CLI.

The rule (docs/guide.md, "Never losing a run"):
- ``--resume CKPT`` resumes from that file (weights, optimizer, schedulers, epoch, amax).
- ``--resume`` resumes from the work dir's last *complete* checkpoint when there is one; a
  given ``--load-from`` / ``--checkpoint`` is where that run started and is not loaded again.
  Without one it starts from ``--load-from`` / ``--checkpoint`` and says so in one log line.
- Without ``--resume``, ``--load-from`` loads weights only (a new schedule).
- QAT never starts from the model's initial weights: with nothing to load it is refused.

MMEngine's own rule differs (an explicit ``load_from`` wins over the work dir, and a missing
checkpoint silently means random weights); tools apply :func:`resolve_start` to the config
before building the Runner, so MMEngine sees one unambiguous ``resume`` / ``load_from`` pair.
"""
import os
import os.path as osp
import re
import zipfile
from dataclasses import dataclass
from typing import Optional, Union

from mmengine.config import Config

#: File names MMEngine's CheckpointHook writes, by epoch or by iteration.
CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def is_complete_checkpoint(path: str) -> bool:
    """True when ``path`` is a whole ``torch.save`` archive: its zip directory, written last,
    is readable (a write killed half-way leaves a file without one)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def last_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint among the work dir's ``epoch_N.pth`` / ``iter_N.pth`` and
    the file its ``last_checkpoint`` names; None when there is none."""
    candidates = []
    if osp.isdir(work_dir):
        candidates = [
            osp.join(work_dir, name) for name in os.listdir(work_dir) if CHECKPOINT_NAME.match(name)
        ]
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as pointer_file:
            named = pointer_file.read().strip()
        if named:
            candidates.append(named)
    complete = [path for path in set(candidates) if is_complete_checkpoint(path)]
    if not complete:
        return None

    def order(path):
        match = CHECKPOINT_NAME.match(osp.basename(path))
        return osp.getmtime(path), int(match.group(2)) if match else -1

    return max(complete, key=order)


@dataclass
class StartPoint:
    """How a run starts: ``resume_from`` (the whole training state) or ``load_from`` (weights
    only) or neither (the model's initial weights); ``message`` says which, for the log."""
    resume_from: Optional[str]
    load_from: Optional[str]
    message: str

    @property
    def from_initial_weights(self) -> bool:
        return self.resume_from is None and self.load_from is None

    def apply(self, cfg: Config) -> None:
        """Set ``cfg.resume`` / ``cfg.load_from`` so MMEngine does exactly this."""
        cfg.resume = self.resume_from is not None
        cfg.load_from = self.resume_from or self.load_from


def resolve_start(work_dir: str, resume: Union[bool, str, None],
                  load_from: Optional[str]) -> StartPoint:
    """Apply the resume rule (module docstring). ``resume`` is False/None, True (auto: the
    work dir's last complete checkpoint) or a checkpoint path."""
    if isinstance(resume, str):
        return StartPoint(resume, None, f'resuming from {resume}')
    if not resume:
        return StartPoint(None, load_from,
                          f'starting from {load_from}' if load_from else 'starting from the '
                          "model's initial weights")
    last = last_complete_checkpoint(work_dir)
    if last is not None:
        origin = f'; the run started from {load_from}' if load_from else ''
        return StartPoint(last, None,
                          f'resuming from {last}, the last complete checkpoint in {work_dir}'
                          f'{origin}')
    if load_from is not None:
        return StartPoint(None, load_from,
                          f'nothing to resume in {work_dir} (no complete checkpoint); '
                          f'starting from {load_from}')
    return StartPoint(None, None, f'nothing to resume in {work_dir} (no complete checkpoint) and '
                      "no checkpoint to load; starting from the model's initial weights")


def trains_qat(cfg: Config) -> bool:
    """Whether the config's ``custom_hooks`` hold a ``QATHook``."""
    return any(dict(hook).get('type') == 'QATHook' for hook in cfg.get('custom_hooks') or [])
