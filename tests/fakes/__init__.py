"""Fake third-party servers that speak real HTTP on loopback."""
