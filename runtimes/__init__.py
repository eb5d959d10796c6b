"""One runner per runtime behind the interface in :mod:`runtimes.base`.

The registry (:mod:`runtimes.registry`) maps the keys users type (``dmphn-bench --runtime
KEY``) to runner classes, found by importing this package's modules; runners import their
runtime's package only when activated, so a missing optional runtime never breaks the others.
"""

from __future__ import annotations

from .base import Runner
from .registry import runner_class, runner_classes, runtime_for_format, runtime_names

__all__ = ["Runner", "runner_class", "runner_classes", "runtime_for_format", "runtime_names"]
