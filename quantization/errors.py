"""User errors as the core raises them: :class:`UserError`, and :func:`error_line`, the one-line
text of any error a tool reports (``apis/tool.py`` prints it)."""
import re

from .fileio import os_error_reason

_ANSI = re.compile(r'\x1b\[[0-9;]*m')


class UserError(ValueError):
    """A user mistake (bad option, file, key or layer); the message says what and how to fix it."""


def error_line(err: BaseException) -> str:
    """``err`` as the text of one line: a KeyError without its quotes, an OSError from the system
    with its path and reason, ANSI colour codes removed, line breaks joined."""
    if isinstance(err, KeyError) and err.args:
        message = str(err.args[0])
    elif isinstance(err, OSError) and err.filename is not None:
        message = f'{err.filename}: {os_error_reason(err)}'
    else:
        message = str(err) or type(err).__name__
    return ' '.join(_ANSI.sub('', message).split())
