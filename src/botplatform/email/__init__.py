"""Transactional email: an outbox row first, then a job that sends it over SMTP."""
