"""One error policy for every command-line tool: a user error ends with one ``error: ...`` line
on stderr naming the file, key, layer or option at fault, and exit code 2.

User errors are :class:`UserError`, ``ValueError``, ``KeyError`` and ``OSError`` (which names its
path and says why: read-only, no space, is a directory). Argument-parsing errors follow the same
rule through :class:`ToolArgumentParser`.
"""
import argparse
import re
import sys
from typing import Callable, Optional, Sequence, Tuple, Type

from .fileio import os_error_reason

_ANSI = re.compile(r'\x1b\[[0-9;]*m')

#: The exception types a tool reports as one line (a tool may add its own, e.g. TensorRT missing).
USER_ERRORS: Tuple[Type[BaseException], ...] = (ValueError, KeyError, OSError)


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


def print_error(err: BaseException) -> int:
    """Print ``err`` as one ``error:`` line on stderr; returns the exit code for bad input, 2."""
    print(f'error: {error_line(err)}', file=sys.stderr)
    return 2


def run_tool(main: Callable[[], Optional[int]],
             extra_errors: Tuple[Type[BaseException], ...] = ()) -> int:
    """Run a tool's ``main()``; a user error becomes one ``error:`` line and exit code 2."""
    try:
        return main() or 0
    except USER_ERRORS + extra_errors as err:
        return print_error(err)


class ToolArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose errors are one ``error: ...`` line and exit code 2 (usage with -h)."""

    def error(self, message: str):
        sys.exit(print_error(UserError(f'{message} (see {self.prog} -h)')))

    def parse_args(self, args: Optional[Sequence[str]] = None, namespace=None):
        try:
            return super().parse_args(args, namespace)
        except ValueError as err:  # raised inside an action, e.g. a malformed --cfg-options
            self.error(str(err))
