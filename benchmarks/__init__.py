"""Parity and latency of every runtime, side by side, from one process and one set of inputs."""
