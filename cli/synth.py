"""dmphn-synth: write blurred/sharp camera-shake pairs in the GoPro layout, offline.

Default source: scikit-image's bundled photos (training photos -> train/ and, with other views
and camera paths, val/; held-out photos -> test/). With --source FOLDER, that folder's images
feed the --split given.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cli.common import new_app, user_errors
from dmphn_core.data.camera_shake import (
    SPLIT_SEED_OFFSETS,
    SPLITS,
    ShakeSettings,
    bundled_sources,
    check_min_contrast,
    check_split,
    folder_sources,
    settings_record,
    synthesize,
    write_provenance,
)
from dmphn_core.errors import DMPHNError

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-synth: "))


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DMPHNError(f"--size wants HxW, e.g. 256x256; got {text!r}") from None
    if height < 16 or width < 16:
        raise DMPHNError(f"--size {text} is too small (at least 16x16)")
    return height, width


@app.command()
@user_errors
def synth(
    out: Annotated[Path, typer.Argument(help="dataset root to write (GoPro layout)")],
    source: Annotated[Path | None, typer.Option(help="folder of sharp photos (default: bundled photos)")] = None,
    split: Annotated[list[str] | None, typer.Option(help="split(s) to write: train, val, test; default all three")] = None,
    pairs_per_photo: Annotated[int, typer.Option(help="pairs cut from each photo (train split)")] = 20,
    val_pairs_per_photo: Annotated[int, typer.Option(help="pairs per photo in the val split")] = 1,
    test_pairs_per_photo: Annotated[int, typer.Option(help="pairs per photo in the test split")] = 3,
    size: Annotated[str, typer.Option(help="pair size HxW")] = "256x256",
    subframes: Annotated[int, typer.Option(help="sub-frames averaged per blurred image (odd)")] = 11,
    max_shift: Annotated[float, typer.Option(help="longest camera path in pixels")] = 12.0,
    max_rotation: Annotated[float, typer.Option(help="largest rotation over the exposure, degrees")] = 1.0,
    noise: Annotated[float, typer.Option(help="Gaussian noise sigma in linear light")] = 0.0,
    min_contrast: Annotated[float, typer.Option(
        help="flatten each train/val view's contrast by a log-uniform factor between this and 1 (1 = off); test never")] = 1.0,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Generate the pairs and a synth.json recording how they were made."""
    settings = ShakeSettings(subframes=subframes, max_shift=max_shift, max_rotation_deg=max_rotation, noise_sigma=noise)
    height, width = _size(size)
    splits = split or list(SPLITS)
    for name in splits:  # all checked before any is written
        check_split(name)
    check_min_contrast(min_contrast)
    counts = {"train": pairs_per_photo, "val": val_pairs_per_photo, "test": test_pairs_per_photo}
    out.mkdir(parents=True, exist_ok=True)
    for name in splits:
        sources = folder_sources(source) if source else bundled_sources(name)
        begin = time.perf_counter()
        # Each split its own seed, so val never repeats a training view of the same photo.
        contrast = 1.0 if name == "test" else min_contrast
        written = synthesize(sources, out, name, pairs_per_photo=counts[name], size=(height, width), settings=settings,
                             seed=seed + SPLIT_SEED_OFFSETS[name], min_contrast=contrast)
        write_provenance(out, {name: settings_record(settings, pairs=written, size=[height, width], seed=seed,
                                                     min_contrast=contrast, sources=[p.name for p in sources])})
        print(f"{name}: {written} pairs from {len(sources)} photos in {time.perf_counter() - begin:.1f}s -> {out / name}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
