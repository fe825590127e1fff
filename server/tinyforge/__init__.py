"""TinyForge: from one sentence to TinyML firmware."""

__version__ = "0.1.0"
