"""Part 6 of the staged Raft: the key/value database of part 5, compacted.

Read ``kvservice.py`` first: how a request goes from the HTTP handler
through ``submit``, the Raft log and the commit channel to the updater, and
back to the handler. Then ``api.py`` (the HTTP routes and JSON shapes),
``kvclient.py`` (a client that finds the leader), ``datastore.py`` (the
state machine) and ``harness.py`` (the test cluster). ``python -m part6kv``
runs a cluster by hand.

What this part adds to part 4 is mostly in ``sessions.py``: how a request
that a client sends again, because its answer was lost, takes effect once.
"""
