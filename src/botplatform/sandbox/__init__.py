"""Fakes of the messaging providers' APIs, for tests and for trying the platform offline."""

from botplatform.sandbox.whatsapp import FakeGraph, create_app, run

__all__ = ["FakeGraph", "create_app", "run"]
