"""What a run records about itself (origin, commands, settings) and how it shows progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def run_origin(settings: dict[str, Any]) -> str:
    """Where a run's step-0 weights come from, from its settings (a new run's, not a resumed one's)."""
    if settings.get("resume"):
        return "unknown (resumed from a checkpoint older than origin records)"
    if settings.get("init"):
        return f"weights from {settings['init']}"
    return f"start {settings.get('start', 'authors')}"


def this_command() -> str:
    return " ".join(sys.argv)


def plain_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as str/number/bool/None only (what weights_only checkpoints may hold)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()}


def bar_mode(wanted: bool, is_main: bool) -> str:
    """A rich progress bar on a terminal when wanted; plain log lines otherwise (CI logs, files)."""
    if not is_main:
        return "off"
    return "rich" if wanted and sys.stderr.isatty() else "lines"


class ProgressBar:
    def __init__(self, mode: str, total: int, start: int) -> None:
        self.mode = mode
        if mode == "rich":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("loss {task.fields[loss]:.5f}  {task.fields[speed]:.1f} img/s"),
                                     TimeRemainingColumn())
            self.task = self.progress.add_task("train", total=total, completed=start, loss=float("nan"), speed=0.0)

    def __enter__(self) -> "ProgressBar":
        if self.mode == "rich":
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mode == "rich":
            self.progress.__exit__(*exc)

    def update(self, step: int, loss: float, speed: float) -> None:
        if self.mode == "rich":
            self.progress.update(self.task, completed=step, loss=loss, speed=speed)
        elif self.mode == "lines":
            print(f"step {step}: loss {loss:.5f}, {speed:.1f} img/s", flush=True)
