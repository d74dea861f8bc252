"""agent-api: the only holder of the engine's credentials, managing agents over HTTP."""

__version__ = "0.1.0"

__all__ = ["__version__"]
