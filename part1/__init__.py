"""Part 1 of the staged Raft: leader election.

Read ``raft.py`` first (the consensus module), then ``server.py`` (the
simulated network) and ``harness.py`` (the test cluster).
"""
