"""The browser fixtures of the dashboard's tests (the live app, Debian's Chromium)."""

from tests.dashboard.conftest import browser, live_url, tab

__all__ = ["browser", "live_url", "tab"]
