"""Markdown tables, built in one place: cells escaped so a ``|`` or a line break in a layer
name, a path or a message never breaks the table."""
from typing import Sequence


def escape_cell(value) -> str:
    """``value`` as one table cell: ``|`` escaped, line breaks joined."""
    return ' '.join(str(value).split()).replace('|', '\\|')


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: str = '') -> str:
    """A Markdown table; ``align`` holds one letter per column, ``'l'`` or ``'r'`` (default:
    the first column left, the others right)."""
    align = align or 'l' + 'r' * (len(header) - 1)
    rule = ['---:' if a == 'r' else '---' for a in align]
    lines = ['| ' + ' | '.join(escape_cell(h) for h in header) + ' |', '|' + '|'.join(rule) + '|']
    lines += ['| ' + ' | '.join(escape_cell(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)
