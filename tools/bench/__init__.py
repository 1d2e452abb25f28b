"""Benchmarks of the parts on their simulated network: throughput, commit
latency next to the network's floor, failover time and idle cost, with Raft
logging off and on (docs/benchmarks.md).

``python -m tools.bench --help`` lists the options. The package drives a part
through its public API only, on clusters it builds itself.
"""
