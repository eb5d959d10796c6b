import copy
import math
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
import torch

from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.data.camera_shake import ShakeSettings, bundled_sources, synthesize
from dmphn_core.data.gopro import PairDataset, StepBatchSampler, find_pairs
from dmphn_core.errors import DMPHNError
from dmphn_core.imageio import image_to_tensor, read_image, tensor_to_image
from dmphn_core.metrics import batch_psnr, psnr
from dmphn_core.training import TrainConfig, Trainer, lr_at, training_loss


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Camera-shake pairs of 48x48 from 3 training photos and 2 held-out ones."""
    root = tmp_path_factory.mktemp("shake")
    settings = ShakeSettings(max_shift=8.0)
    synthesize(bundled_sources("train")[:3], root, "train", pairs_per_photo=4, size=(48, 48), settings=settings)
    synthesize(bundled_sources("test")[:2], root, "test", pairs_per_photo=1, size=(48, 48), settings=settings, seed=1)
    return root


def _config(data, out, **overrides):
    settings = dict(data=str(data), out=str(out), levels="1", batch=2, crop=32, lr=1e-3, steps=4, val_every=1000,
                    ckpt_every=1000, log_every=1000, workers=0, device="cpu", progress=False)
    settings.update(overrides)
    return TrainConfig(**settings)


def _fixed_batch(data):
    """Six 32x32 training crops, the same every call: (blurred, sharp), each (6, 3, 32, 32)."""
    dataset = PairDataset(find_pairs(data, "train"), crop=32, flip=False)
    blurred, sharp = zip(*(dataset[key] for key in StepBatchSampler(len(dataset), 6, seed=99).batch_for_step(0)))
    return torch.stack(blurred), torch.stack(sharp)


def _fixed_batch_loss(model, data, kind="mse"):
    blurred, sharp = _fixed_batch(data)
    with torch.no_grad():
        return training_loss(model.eval()(blurred), sharp, kind).item()


def _constant_colour_loss(data):
    """MSE of the best output that ignores structure: each crop's own mean colour."""
    _, sharp = _fixed_batch(data)
    return torch.nn.functional.mse_loss(sharp.mean(dim=(2, 3), keepdim=True).expand_as(sharp), sharp).item()


def test_loss_decreases_on_held_fixed_batch(tiny_data, tmp_path):
    trainer = Trainer(_config(tiny_data, tmp_path, steps=25, schedule="constant", clip_grad=1.0), log=lambda m: None)
    before = _fixed_batch_loss(trainer.model, tiny_data)
    result = trainer.run()
    after = _fixed_batch_loss(load_checkpoint(result.last_checkpoint).build_model(), tiny_data)
    assert result.step == 25
    assert after < 0.7 * before, (before, after)
    # From a random start the first thing to learn is each crop's mean colour; a model that
    # learnt only that would pass the bar above. It must also have picked up some structure.
    constant = _constant_colour_loss(tiny_data)
    assert after < 0.9 * constant, (after, constant)


@pytest.mark.gpu
@pytest.mark.parametrize(("amp", "dtype"), [("off", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_cuda_training_learns_in_every_amp_mode(tiny_data, tmp_path, amp, dtype):
    """The CUDA path (autocast, GradScaler for fp16, channels_last weights, pinned batches) learns
    the held batch as the CPU test above does, and its checkpoint loads back on the CPU."""
    trainer = Trainer(_config(tiny_data, tmp_path, steps=25, schedule="constant", clip_grad=1.0, device="cuda",
                              amp=amp, channels_last=True), log=lambda m: None)
    assert trainer.device.type == "cuda" and trainer.autocast_dtype == dtype
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    before = _fixed_batch_loss(copy.deepcopy(trainer.model).float().cpu(), tiny_data)
    result = trainer.run()
    after = _fixed_batch_loss(load_checkpoint(result.last_checkpoint).build_model(), tiny_data)
    assert result.step == 25
    assert math.isfinite(after) and after < 0.7 * before, (amp, before, after)


def test_resume_continues_exactly(tiny_data, tmp_path):
    straight = Trainer(_config(tiny_data, tmp_path / "straight"), log=lambda m: None).run()
    first = Trainer(_config(tiny_data, tmp_path / "paused"), log=lambda m: None).run(stop_at_step=2)
    assert first.step == 2 and load_checkpoint(first.last_checkpoint).resume["step"] == 2
    resumed_trainer = Trainer(_config(tiny_data, tmp_path / "resumed", resume=str(first.last_checkpoint)), log=lambda m: None)
    assert resumed_trainer.step == 2
    resumed = resumed_trainer.run()
    assert resumed.step == 4
    a, b = load_checkpoint(straight.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    for key in a.state_dict:
        torch.testing.assert_close(a.state_dict[key], b.state_dict[key], rtol=0, atol=1e-6, msg=key)
    adam_a, adam_b = a.resume["optimizer"]["state"], b.resume["optimizer"]["state"]
    torch.testing.assert_close(adam_a[0]["exp_avg_sq"], adam_b[0]["exp_avg_sq"], rtol=0, atol=1e-9)


def test_resume_refuses_changed_settings_and_final_only_checkpoints(tiny_data, tmp_path):
    first = Trainer(_config(tiny_data, tmp_path / "a"), log=lambda m: None).run(stop_at_step=1)
    with pytest.raises(DMPHNError, match="batch: 2 -> 4"):
        Trainer(_config(tiny_data, tmp_path / "b", batch=4, resume=str(first.last_checkpoint)))
    from dmphn_core.checkpoint import save_checkpoint
    slim = tmp_path / "slim.pt"
    save_checkpoint(slim, load_checkpoint(first.last_checkpoint).build_model())
    with pytest.raises(DMPHNError, match="no training state"):
        Trainer(_config(tiny_data, tmp_path / "c", resume=str(slim)))


def test_validation_reports_gain_over_blurred_input(tiny_data, tmp_path):
    trainer = Trainer(_config(tiny_data, tmp_path, steps=2, val_every=2), log=lambda m: None)
    result = trainer.run()
    record = result.validations[-1]
    assert record["images"] == 2 and record["step"] == 2
    # Recomputed here from the image files and the saved step-2 weights, with the numpy metric.
    model = load_checkpoint(result.last_checkpoint).build_model().eval()
    model_psnr, blurred_psnr = [], []
    for pair in find_pairs(tiny_data, "test"):
        blurred, sharp = read_image(pair.blurred), read_image(pair.sharp)
        with torch.no_grad():
            output = tensor_to_image(model(image_to_tensor(blurred)))  # 48x48 fits DMPHN-1's 4x4 block
        model_psnr.append(psnr(output, sharp))
        blurred_psnr.append(psnr(blurred, sharp))
    expected_model, expected_blurred = sum(model_psnr) / 2, sum(blurred_psnr) / 2
    assert record["psnr_db"] == pytest.approx(expected_model, abs=1e-3)
    assert record["blurred_psnr_db"] == pytest.approx(expected_blurred, abs=1e-3)
    assert record["gain_db"] == pytest.approx(expected_model - expected_blurred, abs=2e-3)
    assert (tmp_path / "best.pt").is_file()
    assert load_checkpoint(result.last_checkpoint).training["validation"]["step"] == 2


def test_validation_uses_val_split_when_the_data_has_one(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    synthesize(bundled_sources("val")[:1], data, "val", pairs_per_photo=3, size=(48, 48), seed=2)
    auto = Trainer(_config(data, tmp_path / "auto", steps=1, val_every=1), log=lambda m: None).run()
    assert auto.validations[-1]["split"] == "val" and auto.validations[-1]["images"] == 3
    forced = Trainer(_config(data, tmp_path / "forced", steps=1, val_every=1, val_split="test"), log=lambda m: None).run()
    assert forced.validations[-1]["split"] == "test" and forced.validations[-1]["images"] == 2
    # GoPro has no val/: auto falls back to test/, but asking for val/ explicitly is an error
    assert Trainer(_config(tiny_data, tmp_path / "gopro"), log=lambda m: None).val_split == "test"
    with pytest.raises(DMPHNError, match="val"):
        Trainer(_config(tiny_data, tmp_path / "missing", val_split="val"), log=lambda m: None)


def test_identity_start_begins_as_a_pass_through_and_then_learns(tiny_data, tmp_path):
    trainer = Trainer(_config(tiny_data, tmp_path, start="identity", lr=1e-4), log=lambda m: None)
    blurred, _ = PairDataset(find_pairs(tiny_data, "test"), crop=None)[0]
    with torch.no_grad():
        torch.testing.assert_close(trainer.model.eval()(blurred[None]), blurred[None], rtol=0, atol=1e-6)
    # Learning, checked where it must show: on the batch it trains on, the loss falls below the
    # pass-through's. (Fresh random crops are no test of that: in the first ~10 steps from the
    # identity they get worse, by ~5 dB on validation, before deblurring starts to pay.)
    held_blurred, held_sharp = _fixed_batch(tiny_data)
    pass_through = _fixed_batch_loss(trainer.model, tiny_data)
    trainer.model.train()
    for _ in range(3):
        trainer._train_step(held_blurred, held_sharp)
    assert _fixed_batch_loss(trainer.model, tiny_data) < 0.99 * pass_through
    with pytest.raises(DMPHNError, match="unknown start"):
        _config(tiny_data, tmp_path, start="zeros")


def test_init_starts_a_new_run_from_saved_weights_and_says_so(tiny_data, tmp_path):
    first = Trainer(_config(tiny_data, tmp_path / "a"), log=lambda m: None).run(stop_at_step=2)
    messages = []
    second = Trainer(_config(tiny_data, tmp_path / "b", init=str(first.last_checkpoint)), log=messages.append)
    assert second.step == 0  # a new run: only the weights are taken
    for name, tensor in load_checkpoint(first.last_checkpoint).build_model().state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], tensor, rtol=0, atol=0)
    second.run(stop_at_step=1)
    assert f"weights from {first.last_checkpoint}" in messages[0] and "start authors" not in messages[0]


def test_a_resumed_run_still_records_where_its_weights_came_from(tiny_data, tmp_path):
    first = Trainer(_config(tiny_data, tmp_path / "a"), log=lambda m: None).run(stop_at_step=1)
    init = str(first.last_checkpoint)
    second = Trainer(_config(tiny_data, tmp_path / "b", init=init), log=lambda m: None).run(stop_at_step=1)
    messages = []
    third = Trainer(_config(tiny_data, tmp_path / "c", resume=str(second.last_checkpoint)), log=messages.append).run(stop_at_step=2)
    record = load_checkpoint(third.last_checkpoint).training
    assert record["origin"] == f"weights from {init}" and f"(weights from {init})" in messages[1]
    assert len(record["commands"]) == 2 and record["settings"]["init"] is None  # --init and then --resume

    for written_by, expected_origin in ((second, f"weights from {init}"), (third, "unknown (resumed from")):
        payload = torch.load(written_by.last_checkpoint, weights_only=True)
        for key in ("origin", "commands"):  # a checkpoint written before these were recorded
            del payload["training"][key]
        torch.save(payload, written_by.last_checkpoint)
        older = Trainer(_config(tiny_data, tmp_path / "d", resume=str(written_by.last_checkpoint)), log=lambda m: None)
        assert older.origin.startswith(expected_origin) and older.commands == [payload["training"]["command"]]


def test_psnr_loss_is_minus_the_mean_psnr_and_weighs_pairs_alike():
    sharp = torch.rand(2, 3, 8, 8)
    noise = torch.randn(2, 3, 8, 8) * torch.tensor([0.001, 0.1]).view(2, 1, 1, 1)  # nearly sharp, heavily off
    output = (sharp + noise).clamp(0, 1)
    error = output - sharp

    def gain_from_shrinking_each_error(kind):
        """How fast the loss falls when one pair's error shrinks by a fixed fraction, per pair."""
        leaf = output.clone().requires_grad_()
        loss = training_loss(leaf, sharp, kind)
        loss.backward()
        return loss.item(), (leaf.grad * error).flatten(1).sum(dim=1)

    loss, psnr_pull = gain_from_shrinking_each_error("psnr")
    assert loss == pytest.approx(-batch_psnr(output, sharp).mean().item(), abs=1e-3)
    assert psnr_pull[0] / psnr_pull[1] == pytest.approx(1.0, rel=1e-3)  # the same dB gain is worth the same
    _, mse_pull = gain_from_shrinking_each_error("mse")
    assert mse_pull[0] / mse_pull[1] < 1e-3  # under MSE the nearly sharp pair hardly counts
    with pytest.raises(DMPHNError, match="unknown loss"):
        TrainConfig(data="d", loss="l1")


def test_psnr_loss_trains_and_is_part_of_the_run(tiny_data, tmp_path):
    messages = []
    first = Trainer(_config(tiny_data, tmp_path / "a", loss="psnr", log_every=1), log=messages.append).run(stop_at_step=2)
    assert "loss psnr" in messages[0]
    assert math.isfinite(first.history[-1]["loss"]) and first.history[-1]["loss"] < 0  # minus a PSNR in dB
    # Minimising it must raise the PSNR: checked on a fixed batch of training crops.
    trainer = Trainer(_config(tiny_data, tmp_path / "b", loss="psnr", steps=10), log=lambda m: None)
    before = _fixed_batch_loss(trainer.model, tiny_data, "psnr")
    trainer.run()
    after = _fixed_batch_loss(trainer.model, tiny_data, "psnr")
    assert after < before - 1.0, (before, after)  # at least 1 dB better
    with pytest.raises(DMPHNError, match="loss: 'psnr' -> 'mse'"):
        Trainer(_config(tiny_data, tmp_path / "a", resume=str(first.last_checkpoint)), log=lambda m: None)


def test_resume_accepts_a_checkpoint_older_than_a_setting(tiny_data, tmp_path):
    first = Trainer(_config(tiny_data, tmp_path / "a"), log=lambda m: None).run(stop_at_step=1)
    payload = torch.load(first.last_checkpoint, weights_only=True)
    del payload["resume"]["train_config"]["start"]  # written before --start existed: it ran the default
    torch.save(payload, first.last_checkpoint)
    assert Trainer(_config(tiny_data, tmp_path / "a", resume=str(first.last_checkpoint)), log=lambda m: None).step == 1
    with pytest.raises(DMPHNError, match="start: 'authors' -> 'identity'"):
        Trainer(_config(tiny_data, tmp_path / "a", start="identity", resume=str(first.last_checkpoint)), log=lambda m: None)


def test_lr_schedules():
    config = _config("x", "y", steps=100, lr=1.0, warmup_steps=10)
    assert lr_at(0, config) == pytest.approx(0.1)
    assert lr_at(10, config) == pytest.approx(1.0)
    assert lr_at(99, config) == pytest.approx(0.1, abs=1e-3)
    step = _config("x", "y", steps=100, lr=1.0, schedule="step")
    assert [lr_at(s, step) for s in (0, 49, 50, 75)] == [1.0, 1.0, 0.5, 0.25]


def _torchrun(args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "cli.train", *args], capture_output=True, text=True, timeout=300, env=env,
    )


@pytest.mark.slow  # two training processes plus one: ~30 s on 2 cores
def test_ddp_on_two_cpu_processes_equals_one_process(tiny_data, tmp_path):
    common = ["--levels", "1", "--batch", "2", "--crop", "32", "--lr", "1e-3", "--steps", "3", "--workers", "0",
              "--device", "cpu", "--val-every", "1000", "--ckpt-every", "1000", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = _torchrun([str(tiny_data), "-o", str(tmp_path / "ddp"), *common], env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "2 process(es)" in ddp.stdout
    single = subprocess.run([sys.executable, "-m", "cli.train", str(tiny_data), "-o", str(tmp_path / "one"), *common],
                            capture_output=True, text=True, timeout=300, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = load_checkpoint(tmp_path / "ddp" / "last.pt"), load_checkpoint(tmp_path / "one" / "last.pt")
    assert a.training["processes"] == 2 and b.training["processes"] == 1
    for key in a.state_dict:
        torch.testing.assert_close(a.state_dict[key], b.state_dict[key], rtol=0, atol=2e-5, msg=key)


def test_ctrl_c_saves_a_resumable_checkpoint(tiny_data, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.train", str(tiny_data), "-o", str(tmp_path), "--levels", "1", "--batch", "2",
         "--crop", "32", "--steps", "100000", "--log-every", "1", "--workers", "0", "--device", "cpu", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell's background jobs (CI runners, nohup) ignore SIGINT, and Python keeps it ignored;
        # a user's terminal delivers it, so give the child the default disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    watchdog = threading.Timer(180, process.kill)  # never hang the suite if no step line comes
    watchdog.start()
    try:
        for line in process.stdout:
            if line.startswith("step 2:"):
                break
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted at step" in stderr and "Traceback" not in stderr
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint.resume["step"] >= 2


def test_cli_bad_data_is_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cli.train", str(tmp_path / "nope"), "--steps", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: no 'train' split") and len(result.stderr.strip().splitlines()) == 1


def test_training_works_when_grad_mode_is_off_globally(tiny_data, tmp_path):
    with torch.no_grad():
        result = Trainer(_config(tiny_data, tmp_path, steps=1), log=lambda m: None).run()
    assert result.step == 1
