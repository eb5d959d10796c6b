"""Thin typer front ends over the library; each module is one console script."""
