"""Analytics: figures per workspace, channel and day, from the rows (see docs/analytics.md)."""
