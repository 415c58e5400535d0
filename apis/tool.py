"""One error policy for every command-line tool: a user error ends with one ``error: ...`` line
on stderr naming the file, key, layer or option at fault, and exit code 2.

User errors are :class:`~quantization.errors.UserError`, ``ValueError``, ``KeyError`` and
``OSError`` (which names its path and says why: read-only, no space, is a directory).
Argument-parsing errors follow the same rule through :class:`ToolArgumentParser`.
"""
import argparse
import sys
from typing import Callable, Optional, Sequence, Tuple, Type

from quantization.errors import UserError, error_line

#: The exception types a tool reports as one line (a tool may add its own, e.g. TensorRT missing).
USER_ERRORS: Tuple[Type[BaseException], ...] = (ValueError, KeyError, OSError)


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
    """``argparse`` whose errors are one ``error: ...`` line and exit code 2 (usage with -h);
    ``--help`` shows every default."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('formatter_class', argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        sys.exit(print_error(UserError(f'{message} (see {self.prog} -h)')))

    def parse_args(self, args: Optional[Sequence[str]] = None, namespace=None):
        try:
            return super().parse_args(args, namespace)
        except ValueError as err:  # raised inside an action, e.g. a malformed --cfg-options
            self.error(str(err))
