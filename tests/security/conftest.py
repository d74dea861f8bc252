"""Fixtures of the security tests live in tests/conftest.py (``start_server``)."""
