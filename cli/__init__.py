"""The top layer: thin typer front ends over the library, one module per console script.

Imports go one way only: ``dmphn_core`` <- ``runtimes`` <- ``export`` <- ``benchmarks`` <- ``cli``.
Shared options and the one-line error helper live in :mod:`cli.common`.
"""
