"""DMPHN reference model, data, training and metrics."""

__version__ = "0.1.0"
