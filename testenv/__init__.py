"""The environment the tests and the benchmarks run in: real engines, images, the service.

Test-only: not part of the shipped distribution (see ``pyproject.toml``).
"""
