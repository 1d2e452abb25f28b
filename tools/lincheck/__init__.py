"""tools.lincheck: is what the clients saw explained by one copy of the data?

A replicated store is *linearizable* when it behaves as if there were a
single copy of the data and every operation took effect at one instant
between its call and its return. Then its clients can reason about it as
about a variable in memory: once a write has returned, every read that
starts later sees it (or a later write), never the older value.

Tests cannot see those instants; they can only record, for each
operation, who called it, when it was called, when it returned and what it
answered: a *history*. The history is linearizable if some single order of
its operations (1) is accepted by the sequential *model* of the store, each
operation answering what its client saw, and (2) keeps every operation
that returned before another was called ahead of it. Two clients that
overlap in time may be ordered either way; a read that overlaps two writes
may see either; a read that starts after a write returned must not see
what came before it. A small example, on a key ``x`` that starts absent::

    client 0: |--- put(x, "1") ---|
    client 1:      |--------- get(x) -> "1" ---------|
    client 2:                          |- get(x) -> "" (absent) -|

is not linearizable: client 2's get started after the put returned, so it
must come after the put, and must see "1". Had client 2's get started
before the put returned, the order get, put, get would explain it.

``check(history)`` searches for such an order (Wing & Gong's search, with
Lowe's memoization, one key at a time: see ``search`` and ``check``) and
returns a ``Result``: ``ok``, ``not linearizable`` (naming the key, the
longest linearizable prefix found, and the operations none of which can
follow it), or ``unknown`` when its ``timeout`` ran out.
``python -m tools.lincheck HISTORY.json [--html OUT.html]`` does the same
from the command line, and draws the history.

* ``history``: the JSON format, read and checked (``HistoryError``);
* ``model``: the sequential specifications (``KV_MODEL``; adding one);
* ``search``: the search for one key; ``check``: a whole history;
* ``view``: the HTML picture, with the style and script of the package's
  ``view.css`` and ``view.js``; ``harness``: ``assert_linearizable`` for
  tests; ``generate``: made-up histories; ``bench``: how fast it is;
* ``cli``: ``python -m tools.lincheck``; ``pytest_plugin``: ``pytest
  --lincheck-histories=DIR`` saves the kv tests' histories.
"""

from tools.lincheck.check import PartResult, Result, check, check_operations
from tools.lincheck.harness import assert_linearizable, write_report
from tools.lincheck.history import (
    HistoryError,
    Operation,
    Output,
    load_history,
    parse_history,
)
from tools.lincheck.model import KV_MODEL, Model
from tools.lincheck.search import Verdict
from tools.lincheck.view import render_page, write_page

__all__ = [
    "KV_MODEL",
    "HistoryError",
    "Model",
    "Operation",
    "Output",
    "PartResult",
    "Result",
    "Verdict",
    "assert_linearizable",
    "check",
    "check_operations",
    "load_history",
    "parse_history",
    "render_page",
    "write_page",
    "write_report",
]
