"""Outgoing webhooks: customer endpoints, signed deliveries with retries, the delivery log."""
