"""Retention: a workspace's messages older than N days are deleted by a scheduled job,
archived first (gzipped JSON lines in storage) when the workspace asks for it."""
