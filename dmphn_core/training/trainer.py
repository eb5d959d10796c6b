"""The training loop: one :class:`Trainer` per run (see :mod:`dmphn_core.training`)."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.gopro import PairDataset, StepBatchSampler, find_pairs
from ..errors import DMPHNError
from ..geometry import crop_to, pad_to_block
from ..metrics import batch_psnr
from ..model import DMPHN, DMPHNConfig, init_identity
from .config import TrainConfig, TrainingInterrupted, TrainResult, lr_at, training_loss
from .distributed import autocast_dtype, resolve_device, setup_distributed
from .records import ProgressBar, bar_mode, plain_settings, run_origin, this_command


def validation_split(data: Path, requested: str) -> str | None:
    """The split that picks best.pt; "auto": val/, else test/ (GoPro has no val), else None."""
    if requested != "auto":
        return requested
    return next((split for split in ("val", "test") if (data / split).is_dir()), None)


class Trainer:
    """One training run; :meth:`run` returns when done, out of time, or raises on Ctrl-C."""

    def __init__(self, config: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.out = Path(config.out)
        self.dist = setup_distributed("cuda" if config.device.startswith("cuda") or (
            config.device == "auto" and torch.cuda.is_available()) else "cpu")
        self.device = resolve_device(config.device, self.dist.local_rank)
        self.log = log if self.dist.is_main else (lambda message: None)
        self.autocast_dtype = autocast_dtype(config.amp, self.device)
        self.train_pairs = find_pairs(config.data, "train", config.blur_kind)
        self.val_split = validation_split(Path(config.data), config.val_split)
        self.val_pairs = (find_pairs(config.data, self.val_split, config.blur_kind)[: config.val_images]
                          if self.val_split else [])
        self.step = 0
        self.elapsed_before = 0.0
        self.best_val_psnr = -math.inf
        self.history: list[dict[str, Any]] = []
        self.validations: list[dict[str, Any]] = []
        # Where the weights of step 0 came from, and every command of this run so far: a
        # resumed run keeps both, so its checkpoints still say how they were made.
        self.origin = run_origin(asdict(config))
        self.commands: list[str] = []
        torch.manual_seed(config.seed)
        self.model = self._build_model()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        if config.resume:
            self._load_resume_state(Path(config.resume))
        self.train_model: nn.Module = self.model
        if self.dist.world > 1:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

    # -- setup -------------------------------------------------------------------------
    def _build_model(self) -> DMPHN:
        source = self.config.resume or self.config.init
        if source:
            checkpoint = load_checkpoint(source)
            wanted = DMPHNConfig(self.config.levels, self.config.layout)
            if checkpoint.config != wanted:
                raise DMPHNError(f"{source} holds {checkpoint.config.name} ({checkpoint.config.layout}), "
                                 f"but this run trains {wanted.name} ({wanted.layout})")
            model = checkpoint.build_model()
        else:
            model = DMPHN(DMPHNConfig(self.config.levels, self.config.layout))
            if self.config.start == "identity":
                init_identity(model)
        model = model.to(self.device).train()
        if self.device.type == "cuda" and self.config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def _load_resume_state(self, path: Path) -> None:
        checkpoint = load_checkpoint(path)
        state = checkpoint.resume
        if not state:
            raise DMPHNError(f"{path} has no training state to resume from (a shipped or final-only checkpoint); "
                             f"use --init to start a new run from its weights")
        saved = state["train_config"]
        # A setting newer than the checkpoint took its default in that run.
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        saved = {k: saved.get(k, defaults[k]) for k in TrainConfig.RUN_IDENTITY}
        changed = [f"{k}: {saved[k]!r} -> {getattr(self.config, k)!r}" for k in TrainConfig.RUN_IDENTITY
                   if saved[k] != getattr(self.config, k)]
        if changed:
            raise DMPHNError(f"--resume with different settings would not continue the same run ({'; '.join(changed)})")
        self.optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.best_val_psnr = float(state.get("best_val_psnr", -math.inf))
        record = checkpoint.training or {}
        self.origin = record.get("origin") or run_origin(state["train_config"])
        # A record older than command lists has only the command that wrote it.
        self.commands = list(record.get("commands") or ([record["command"]] if record.get("command") else []))
        self.log(f"resumed {path} at step {self.step}")

    def _loader(self) -> DataLoader:
        sampler = StepBatchSampler(len(self.train_pairs), self.config.batch, seed=self.config.seed,
                                   start_step=self.step, rank=self.dist.rank, world=self.dist.world)
        return DataLoader(
            PairDataset(self.train_pairs, crop=self.config.crop),
            batch_sampler=sampler,
            num_workers=self.config.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.config.workers > 0,
        )

    def _start_description(self) -> str:
        if self.config.resume:
            return f"resumed from {self.config.resume} ({self.origin})"
        return self.origin

    # -- the loop ------------------------------------------------------------------------
    def run(self, stop_at_step: int | None = None) -> TrainResult:
        """Train to ``config.steps``; ``stop_at_step`` pauses earlier (saved, resumable)."""
        config = self.config
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        begin = time.perf_counter()
        deadline = begin + config.max_minutes * 60 if config.max_minutes else math.inf
        self.log(f"training {self.model.config.name} on {len(self.train_pairs)} pairs ({config.data}), "
                 f"{self.dist.world} process(es) on {self.device}, steps {self.step}->{config.steps}, "
                 f"batch {config.batch}, crop {config.crop}, lr {config.lr} ({config.schedule}), loss {config.loss}, "
                 f"{self._start_description()}")
        self.log(f"validation: {len(self.val_pairs)} pairs of {self.val_split}/ pick best.pt" if self.val_pairs
                 else "validation: none (no val/ or test/ split); best.pt is not written")
        window_start, window_images = time.perf_counter(), 0
        batches = iter(self._loader()) if self.step < config.steps else iter(())
        progress = ProgressBar(bar_mode(config.progress, self.dist.is_main), config.steps, self.step)
        try:
            with progress as bar:
                while self.step < config.steps:
                    blurred, sharp = next(batches)
                    loss = self._train_step(blurred, sharp)
                    self.step += 1
                    window_images += config.batch
                    if self.step % config.log_every == 0 or self.step == config.steps:
                        seconds = time.perf_counter() - window_start
                        record = {"step": self.step, "loss": loss, "lr": lr_at(self.step - 1, config),
                                  "images_per_s": window_images / max(seconds, 1e-9)}
                        self.history.append(record)
                        self._append_log(record)
                        bar.update(self.step, loss, record["images_per_s"])
                        window_start, window_images = time.perf_counter(), 0
                    if self.step % config.val_every == 0 or self.step == config.steps:
                        self._validate_and_keep_best(begin)
                    if self.step % config.ckpt_every == 0 or self.step == config.steps:
                        self._save(self.out / "last.pt", begin)
                    if stop_at_step is not None and self.step >= stop_at_step:
                        self._save(self.out / "last.pt", begin)
                        break
                    if self._out_of_time(deadline):
                        self.log(f"--max-minutes {config.max_minutes} reached at step {self.step}")
                        self._validate_and_keep_best(begin)
                        self._save(self.out / "last.pt", begin)
                        break
        except KeyboardInterrupt:
            self._save(self.out / "last.pt", begin)
            raise TrainingInterrupted(
                f"interrupted at step {self.step}; saved {self.out / 'last.pt'} (continue with --resume {self.out / 'last.pt'})"
            ) from None
        finally:
            if self.dist.world > 1 and dist.is_initialized():
                dist.destroy_process_group()
        best = self.out / "best.pt"
        return TrainResult(self.step, self.out / "last.pt", best if best.exists() else None,
                           self.elapsed_before + time.perf_counter() - begin, self.history, self.validations)

    def _out_of_time(self, deadline: float) -> bool:
        if deadline == math.inf:
            return False
        late = torch.tensor([float(time.perf_counter() > deadline)])
        if self.dist.world > 1:
            # every rank must stop at the same step, or the others wait forever in all-reduce
            dist.all_reduce(late, op=dist.ReduceOp.MAX)
        return bool(late.item())

    def _train_step(self, blurred: torch.Tensor, sharp: torch.Tensor) -> float:
        non_blocking = self.device.type == "cuda"
        memory_format = torch.channels_last if self.device.type == "cuda" and self.config.channels_last else torch.contiguous_format
        blurred = blurred.to(self.device, non_blocking=non_blocking).contiguous(memory_format=memory_format)
        sharp = sharp.to(self.device, non_blocking=non_blocking)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.config)
        self.optimizer.zero_grad(set_to_none=True)
        autocast = (torch.autocast("cuda", dtype=self.autocast_dtype) if self.autocast_dtype is not None
                    else contextlib.nullcontext())
        # enable_grad: a caller may have switched grad mode off globally (notebooks, test suites)
        with torch.enable_grad():
            with autocast:
                output = self.train_model(blurred)
            loss = training_loss(output.float(), sharp, self.config.loss)
            if not torch.isfinite(loss):
                raise DMPHNError(f"loss became {loss.item()} at step {self.step}; lower --lr or use --amp bf16/off")
            self.scaler.scale(loss).backward()
        if self.config.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """Mean PSNR of the model output and of the blurred input vs sharp, on the validation split."""
        if not self.val_pairs:
            return None
        self.model.eval()
        model_psnr, input_psnr = [], []
        for index in range(len(self.val_pairs)):
            blurred, sharp = PairDataset(self.val_pairs, crop=None)[index]
            blurred, sharp = blurred[None].to(self.device), sharp[None].to(self.device)
            padded, size = pad_to_block(blurred, self.model.geometry)
            output = crop_to(self.model(padded), size)
            model_psnr.append(batch_psnr(output, sharp).item())
            input_psnr.append(batch_psnr(blurred, sharp).item())
        self.model.train()
        mean_model, mean_input = sum(model_psnr) / len(model_psnr), sum(input_psnr) / len(input_psnr)
        return {"step": self.step, "split": self.val_split, "images": len(model_psnr), "psnr_db": mean_model,
                "blurred_psnr_db": mean_input, "gain_db": mean_model - mean_input}

    def _validate_and_keep_best(self, begin: float) -> None:
        if not self.dist.is_main:
            return
        result = self.validate()
        if result is None:
            return
        self.validations.append(result)
        self._append_log({"validation": result})
        self.log(f"step {self.step}: validation PSNR {result['psnr_db']:.2f} dB vs blurred "
                 f"{result['blurred_psnr_db']:.2f} dB (gain {result['gain_db']:+.2f} dB, "
                 f"{result['images']} {self.val_split} images)")
        if result["psnr_db"] > self.best_val_psnr:
            self.best_val_psnr = result["psnr_db"]
            self._save(self.out / "best.pt", begin)

    # -- records ---------------------------------------------------------------------------
    def training_info(self, begin: float) -> dict[str, Any]:
        return {
            "step": self.step,
            "steps": self.config.steps,
            "seconds": round(self.elapsed_before + time.perf_counter() - begin, 1),
            "device": str(self.device) if self.device.type == "cpu" else torch.cuda.get_device_name(self.device),
            "processes": self.dist.world,
            "settings": plain_settings(asdict(self.config)),
            "last_loss": self.history[-1]["loss"] if self.history else None,
            "validation": self.validations[-1] if self.validations else None,
            "command": this_command(),
            "commands": self.commands + [this_command()],
            "origin": self.origin,
            "saved": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": str(torch.__version__),
        }

    def _save(self, path: Path, begin: float) -> None:
        if not self.dist.is_main:
            return
        resume = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "train_config": plain_settings(asdict(self.config)),
            "elapsed_s": self.elapsed_before + time.perf_counter() - begin,
            "best_val_psnr": self.best_val_psnr if math.isfinite(self.best_val_psnr) else -1.0,
        }
        save_checkpoint(path, self.model, training=self.training_info(begin), resume=resume)

    def _append_log(self, record: dict[str, Any]) -> None:
        if self.dist.is_main:
            with open(self.out / "train_log.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
