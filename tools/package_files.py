"""The text files that ship inside the tools' packages: the JavaScript and
CSS of the visualizer's and lincheck's pages, which each page inlines so
that it is one self-contained file.

They are package data (pyproject.toml lists them), read through
``importlib.resources``, so they are found alike from the repository, an
editable install or a wheel.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def package_text(package: str, name: str) -> str:
    """The text of the file ``name`` in ``package`` (a dotted name, such as
    ``"tools.lincheck"``), read once and then remembered."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")
