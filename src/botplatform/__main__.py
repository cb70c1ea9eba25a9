"""`python -m botplatform …` is the same as the `botplatform` command."""

from botplatform.cli import app

app()
