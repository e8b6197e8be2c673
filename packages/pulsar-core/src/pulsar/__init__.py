"""Pulsar: an event-driven concurrent framework built on asyncio actors."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"

__all__ = ["__version__"]
