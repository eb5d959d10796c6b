"""Profile the convolutions of the static-shape and per-patch forms (:mod:`benchmarks.profile_forms`)::

    python -m cli.profile_forms --shape 720x1280 --threads 2 --passes 3 -o profile.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from benchmarks.machine import machine_info
from benchmarks.prepare import parse_shape
from benchmarks.profile_forms import profile_forms, to_markdown
from cli.common import new_app, user_errors
from dmphn_core.fileio import write_text_atomic
from dmphn_core.model import dmphn

app = new_app("Profile the convolutions of the static-shape and per-patch forms, side by side.")


@app.command()
@user_errors
def main(
    shape: Annotated[str, typer.Option(help="HxW of the input")] = "256x512",
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 2,
    passes: Annotated[int, typer.Option(min=1, help="forward passes profiled per form")] = 3,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the markdown here")] = None,
) -> None:
    height, width = parse_shape(shape)
    dmphn(4).geometry.check_size(height, width)
    torch.set_num_threads(threads)
    text = to_markdown(profile_forms(height, width, passes), (height, width), passes, machine_info("cpu"))
    if out:
        write_text_atomic(out, text + "\n")
    print(text)


if __name__ == "__main__":
    app()
