"""Argument types and options the CLI's commands share."""

from __future__ import annotations

import argparse


def add_preview(parser: argparse.ArgumentParser, what: str) -> None:
    """`--preview`: show what the command would do, change nothing. `--dry-run`, the name it had,
    is kept out of the help so that scripts written for it keep working."""
    parser.add_argument("--preview", action="store_true", help=what)
    parser.add_argument("--dry-run", dest="preview", action="store_true", help=argparse.SUPPRESS)


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
