"""Messaging channels: one normalized message model, one adapter port, one adapter per
provider."""
