"""Part 6 of the staged Raft: log compaction, with snapshots and
InstallSnapshot.

Read ``raft.py`` first, against part 3 (``diff -u part3/raft.py
part6/raft.py``): ``snapshot``, ``install_snapshot``, ``persist_snapshot``,
and every place that reads the log through ``position`` and ``term_at``.
Then ``storage.py`` (``delete``), and ``harness.py`` (``snapshot_every``,
``collect_snapshot``).
"""
