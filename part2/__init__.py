"""Part 2 of the staged Raft: commands and log replication.

Read ``raft.py`` first (``submit``, ``append_entries``, ``leader_send_aes``,
``commit_chan_sender``), then ``harness.py`` for how commits are checked.
"""
