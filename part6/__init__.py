"""Part 3 of the staged Raft: persistence, crash recovery and fast log
backtracking.

Read ``storage.py``, then ``raft.py`` (``persist_to_storage``,
``restore_from_storage``, the conflict hints in ``append_entries`` and
``send_append_entries``), then ``harness.py`` (``crash_peer``,
``restart_peer``).
"""
