"""Benchmarks of the parts (issue 7): throughput, commit latency, failover
time and idle cost, with Raft logging off and on.

Run ``python -m tools.bench --part part3`` (or ``--quick`` for a reduced set
in under a minute); ``--help`` lists the options. The package drives a part
through its public API only (DESIGN.md), on clusters it builds itself.
"""
