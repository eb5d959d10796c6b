"""The runtime registry, built from the runner classes themselves.

Every module of this package is imported once, on first use, and each :class:`Runner`
subclass with a ``runtime`` key is registered under it with its declared artifact format,
devices and precisions. Adding a runtime is adding one module here; no list elsewhere names
it. Runner modules import their runtime's package lazily (inside methods), so a runtime
that is not installed still registers and reports why it cannot run.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from dmphn_core.errors import DMPHNError

from .base import Runner


@functools.cache
def runner_classes() -> dict[str, type[Runner]]:
    """``{runtime key: runner class}`` in report order (``Runner.rank``, then key)."""
    package = importlib.import_module(__package__)
    found: dict[str, type[Runner]] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{__package__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Runner) and value.runtime and value.__module__ == module.__name__:
                if value.runtime in found and found[value.runtime] is not value:
                    raise DMPHNError(f"runtime key {value.runtime!r} is declared twice ({found[value.runtime]}, {value})")
                found[value.runtime] = value
    return dict(sorted(found.items(), key=lambda item: (item[1].rank, item[0])))


def runtime_names() -> tuple[str, ...]:
    return tuple(runner_classes())


def runner_class(runtime: str) -> type[Runner]:
    try:
        return runner_classes()[runtime]
    except KeyError:
        raise DMPHNError(f"unknown runtime {runtime!r}; use one of {', '.join(runner_classes())}") from None


def runtime_for_format(fmt: str) -> str:
    """The runtime that runs files of artifact format ``fmt`` when none is named."""
    for key, cls in runner_classes().items():
        if cls.artifact_format == fmt and cls.default_for_format:
            return key
    raise DMPHNError(f"no runtime here runs {fmt} files")
