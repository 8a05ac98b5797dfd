"""Fixtures every test directory may use, registered once per session (so one PostgreSQL serves the run)."""

pytest_plugins = ("tests.support.postgres",)
