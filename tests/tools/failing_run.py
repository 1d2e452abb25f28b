"""A test that fails on purpose, for the visualizer's tests of a FAIL page.

A plain ``pytest`` run does not collect it (its name does not start with
``test_``); tests/tools/conftest.py runs it on its own, with a live log, and
reads that log.
"""

from __future__ import annotations

import pytest

import part3.server
from part3.harness import Harness
from tests.part3.test_invariants import EarlierTermCommitCM, figure8


def test_figure8_with_the_wrong_commit_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Figure 8 of the paper, on servers that commit an entry of an earlier
    term by counting its replicas: the leader of a later term lacks the
    committed entry, and its own overwrites it."""
    monkeypatch.setattr(part3.server, "ConsensusModule", EarlierTermCommitCM)
    with Harness(3) as h:
        figure8(h)
