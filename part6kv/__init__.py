"""Part 6 of the staged Raft: the key/value database of part 5, compacted.

Read ``kvservice.py`` first: how a request goes from the HTTP handler
through ``submit``, the Raft log and the commit channel to the updater, and
back to the handler. Then ``api.py`` (the HTTP routes and JSON shapes),
``kvclient.py`` (a client that finds the leader), ``datastore.py`` (the
state machine) and ``harness.py`` (the test cluster). ``python -m part6kv``
runs a cluster by hand.

What this part adds to part 5 is in ``kvservice.py``: on part6's Raft, the
updater takes a snapshot of the DataStore and of the session table when the
log grows too large (``take_snapshot``), and replaces both with a snapshot
that comes on the commit channel (``restore_snapshot``).
"""
