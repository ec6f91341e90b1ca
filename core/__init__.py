"""Shared building blocks: errors, atomic writes, hashing, settings, the registry."""
