"""Rechenwerk: the open platform that runs a shared AI compute centre."""

__version__ = "0.1.0"
