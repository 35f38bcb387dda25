"""Flotilla: one control layer over many clusters."""

__version__ = "0.1.0"
