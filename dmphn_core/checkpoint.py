"""Checkpoints: one file with weights, config and training info, loaded without pickle code.

Layout of a checkpoint (a ``torch.save`` zip read back with ``weights_only=True``, so a
file cannot run code when loaded)::

    {"format": "dmphn-checkpoint", "format_version": 1,
     "config": {"levels": 4, "layout": "design"},
     "state_dict": {...},              # float32, or float16 for small shipped files
     "training": {...},                # step, losses, PSNR, command, timing (JSON-able)
     "toolkit_version": "0.2.0",
     "resume": {...}}                  # optional: optimizer/scheduler/RNG state

Also here: an importer for the authors' per-level files (``encoder_lv{1..4}.pkl`` /
``decoder_lv{1..4}.pkl``, state dicts of their ``models.Encoder``/``models.Decoder``).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import CheckpointError
from .fileio import atomic_path
from .model import DMPHN, DMPHNConfig

FORMAT = "dmphn-checkpoint"
FORMAT_VERSION = 1

#: The demo model shipped inside the package (docs/training.md: how it was trained).
DEMO_CHECKPOINT = Path(__file__).parent / "assets" / "dmphn_demo.pt"


@dataclass
class Checkpoint:
    config: DMPHNConfig
    state_dict: dict[str, torch.Tensor]
    training: dict[str, Any] = field(default_factory=dict)
    resume: dict[str, Any] | None = None
    toolkit_version: str = __version__

    def build_model(self, device: str | torch.device = "cpu") -> DMPHN:
        """The network in eval mode, float32, on ``device``."""
        model = DMPHN(self.config)
        state = {k: v.float() for k, v in self.state_dict.items()}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            missing, unexpected = _key_mismatch(model, state)
            raise CheckpointError(
                f"checkpoint weights do not fit {self.config.name}: "
                f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                f"(e.g. {unexpected[:2]}), or shapes differ"
            ) from exc
        return model.to(device).eval()


def save_checkpoint(
    path: str | os.PathLike,
    model: DMPHN,
    *,
    training: dict[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Write atomically: an interrupted save never leaves a truncated file in place."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items()},
        "training": dict(training or {}),
        "toolkit_version": __version__,
    }
    if resume is not None:
        payload["resume"] = resume
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


# torch's weights-only unpickler names what it refused: "Unsupported global: GLOBAL x.y" (torch <= 2.12),
# "unsupported GLOBAL posix.system whose module posix is blocked" (2.13); match the class, not one wording
_UNSAFE_GLOBAL = re.compile(r"unsupported global\W*(?:global\s+)?([\w.]+)|global\s+([\w.]+)\s+whose module \S+ is blocked", re.I)


def unsafe_global(exc: BaseException) -> str | None:
    """The Python object a weights-only load refused to create (e.g. ``posix.system``), or None."""
    match = _UNSAFE_GLOBAL.search(str(exc))
    return None if match is None else (match.group(1) or match.group(2))


def _safe_load(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        hint = " (looks like the authors' per-level files: use `dmphn-ckpt import-authors`)" if any(
            path.glob("encoder_lv*.pkl")
        ) else ""
        raise CheckpointError(f"checkpoint path is a folder, not a file: {path}{hint}")
    try:
        with warnings.catch_warnings():
            # a non-torch pickle makes torch warn about its protocol before failing
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = unsafe_global(exc)
        if refused is None:
            raise CheckpointError(f"cannot read checkpoint {path}: file is corrupt, truncated or not a torch file") from exc
        raise CheckpointError(
            f"refused to load {path} as unsafe: it asks to create {refused}, not only tensors and plain "
            f"containers, and such a file could run code (loaded with weights_only=True; nothing was run)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - garbage makes the unpickler fail in arbitrary ways (KeyError, EOFError…)
        raise CheckpointError(f"cannot read checkpoint {path}: file is corrupt, truncated or not a torch file") from exc


def _looks_like_dmphn_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and k.startswith(("encoders.", "decoders.")) for k in obj
    )


def _levels_in_state_dict(state: dict[str, Any]) -> int:
    return len({k.split(".")[1] for k in state if k.startswith("encoders.")})


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; a bare ``model.state_dict()`` file is accepted too."""
    path = Path(path)
    obj = _safe_load(path)
    if _looks_like_dmphn_state_dict(obj):
        ckpt = Checkpoint(DMPHNConfig(levels=_levels_in_state_dict(obj)), dict(obj))
    elif isinstance(obj, dict) and obj.get("format") == FORMAT:
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format version {version} is not supported (expected {FORMAT_VERSION})")
        try:
            config = DMPHNConfig.from_dict(obj["config"])
            state = obj["state_dict"]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: checkpoint config or weights are malformed ({exc})") from exc
        ckpt = Checkpoint(
            config, state, obj.get("training", {}), obj.get("resume"), obj.get("toolkit_version", "?")
        )
    elif isinstance(obj, dict) and any(str(k).removeprefix("module.").startswith("layer1.") for k in obj):
        raise CheckpointError(
            f"{path} is one of the authors' per-level files; import the folder with "
            f"`dmphn-ckpt import-authors FOLDER -o model.pt`"
        )
    else:
        raise CheckpointError(f"{path} is a torch file but not a DMPHN checkpoint")
    if not isinstance(ckpt.state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.state_dict.values()):
        raise CheckpointError(f"{path}: state_dict is not a mapping of tensors")
    bad = [k for k, v in ckpt.state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} weight tensors hold NaN or Inf (first: {bad[0]})")
    return ckpt


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> DMPHN:
    """Load a checkpoint (the shipped demo model when ``path`` is None) as an eval model."""
    return load_checkpoint(path or DEMO_CHECKPOINT).build_model(device)


def describe_weights(checkpoint: Checkpoint, path: str | os.PathLike | None = None) -> str:
    """One line saying which weights these are, for the ``weights`` field of every report row."""
    training = checkpoint.training if isinstance(checkpoint.training, dict) else {}
    authors = training.get("authors")
    if isinstance(authors, dict) and authors.get("label"):
        return str(authors["label"])
    if path is None or Path(path).resolve() == DEMO_CHECKPOINT.resolve():
        return f"shipped demo checkpoint ({DEMO_CHECKPOINT.name}, {checkpoint.config.name})"
    if training.get("untrained"):
        return f"untrained {checkpoint.config.name} (seed {training.get('seed', '?')})"
    return f"checkpoint {Path(path).name} ({checkpoint.config.name})"


def _key_mismatch(model: torch.nn.Module, state: dict[str, Any]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)


# -- the authors' per-level layout ------------------------------------------------------

#: Their ``models.Encoder``/``models.Decoder`` attribute names -> index in our ``layers``.
#: Residual blocks there are ``nn.Sequential(conv, ReLU, conv)``; ours wrap it as ``body``.
_AUTHORS_ENCODER = {1: "0", 2: "1.body", 3: "2.body", 5: "3", 6: "4.body", 7: "5.body", 9: "6", 10: "7.body", 11: "8.body"}
_AUTHORS_DECODER = {13: "0.body", 14: "1.body", 16: "2", 17: "3.body", 18: "4.body", 20: "5", 21: "6.body", 22: "7.body", 24: "8"}
_AUTHORS_KEY = re.compile(r"^layer(\d+)\.(.+)$")


def map_authors_state_dict(state: dict[str, torch.Tensor], part: str, level: int) -> dict[str, torch.Tensor]:
    """Rename one authors' encoder or decoder state dict to our keys for ``level``."""
    table = _AUTHORS_ENCODER if part == "encoder" else _AUTHORS_DECODER
    mapped = {}
    for key, value in state.items():
        match = _AUTHORS_KEY.match(key.removeprefix("module."))  # DataParallel saves add "module."
        if not match or int(match.group(1)) not in table:
            raise CheckpointError(f"unexpected key {key!r} in the authors' {part}_lv{level} state dict")
        mapped[f"{part}s.{level - 1}.layers.{table[int(match.group(1))]}.{match.group(2)}"] = value
    return mapped


def import_authors_checkpoint(folder: str | os.PathLike, layout: str = "authors") -> Checkpoint:
    """Build a checkpoint from ``encoder_lv{i}.pkl``/``decoder_lv{i}.pkl`` in ``folder``.

    The level count is the number of consecutive levels present from 1. ``layout``
    defaults to the authors' orientation so the imported model reproduces their outputs.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"not a folder: {folder}")
    levels = 0
    while (folder / f"encoder_lv{levels + 1}.pkl").exists():
        levels += 1
    if levels == 0:
        raise CheckpointError(f"no encoder_lv1.pkl in {folder}")
    state: dict[str, torch.Tensor] = {}
    for level in range(1, levels + 1):
        for part in ("encoder", "decoder"):
            file = folder / f"{part}_lv{level}.pkl"
            part_state = _safe_load(file)
            if not isinstance(part_state, dict):
                raise CheckpointError(f"{file} is not a state dict")
            state.update(map_authors_state_dict(part_state, part, level))
    ckpt = Checkpoint(DMPHNConfig(levels=levels, layout=layout), state, {"imported_from": str(folder)})
    ckpt.build_model()  # fail now, with a clear message, if shapes do not fit
    return ckpt
