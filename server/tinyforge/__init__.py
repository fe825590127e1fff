"""TinyForge."""
