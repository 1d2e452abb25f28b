"""Command-line pieces shared by ``python -m tools.sim`` and the tools that
run on it (``python -m tools.playground``): an argparse that tells bad input
in one line with exit status 2, and the seeds they take.

No pytest here: a tool that only runs a simulation imports this alone.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

BAD_INPUT = 2
"""The exit status for bad input."""

SEED_LIMIT = 1 << 32
"""Seeds are whole numbers below this."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with bad input told in one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"{self.prog}: {message} (--help tells more)\n")


def seed(text: str) -> int:
    """An argparse type: a seed."""
    if not text.isdigit() or int(text) >= SEED_LIMIT:
        raise argparse.ArgumentTypeError(
            f"a seed is a whole number below {SEED_LIMIT}, not {text!r}"
        )
    return int(text)
