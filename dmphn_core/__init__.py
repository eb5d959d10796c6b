"""DMPHN reference model, data, training and metrics."""

__version__ = "0.2.0"
