"""Part 4 of the staged Raft: a replicated key/value database over part3.

Read ``kvservice.py`` first: how a request goes from the HTTP handler
through ``submit``, the Raft log and the commit channel to the updater, and
back to the handler. Then ``api.py`` (the HTTP routes and JSON shapes),
``kvclient.py`` (a client that finds the leader), ``datastore.py`` (the
state machine) and ``harness.py`` (the test cluster). ``python -m part4kv``
runs a cluster by hand.
"""
