"""Syncing sources: the engine that stores each batch with its cursor, and the reader processes that read them."""
