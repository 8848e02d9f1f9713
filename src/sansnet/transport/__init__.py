"""Drivers that move bytes between the protocol engines and real or in-memory streams."""
