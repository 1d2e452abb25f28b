"""Programs that help a reader of the staged Raft: above all the log visualizer."""
