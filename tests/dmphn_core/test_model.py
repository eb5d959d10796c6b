"""The static-shape model: equal to the per-patch reference, to the authors' code, and sane."""

import pytest
import torch
from torch import nn

from dmphn_core.geometry import Geometry
from dmphn_core.model import DMPHN, Decoder, DMPHNConfig, Encoder, dmphn, dmphn_1_2_4_8, init_identity
from dmphn_core.reference import PerPatchDMPHN
from tests.conftest import random_model


@pytest.fixture(autouse=True)
def _forward_only():
    """These tests compare forwards; tests that need gradients enable them locally.

    A fixture, not a module-level ``set_grad_enabled(False)``, which would leak into every
    test collected after this module (training tests then fail to backpropagate).
    """
    with torch.no_grad():
        yield


def _reference(model: DMPHN) -> PerPatchDMPHN:
    reference = PerPatchDMPHN(model.config).eval()
    reference.load_state_dict(model.state_dict())
    return reference


def _valid_sizes(levels: int, layout: str, batch: int = 1) -> list[tuple[int, int]]:
    """Grids of 1x1, 3x2 and 5x3 size blocks, and 64x128 (the suite's shape) for batch 1: a batch
    of 3 at 64x128 took a fifth of this test's time and runs no code the other cases do not."""
    bh, bw = Geometry(levels, layout).size_block
    return [(bh, bw), (3 * bh, 2 * bw), *([(64, 128)] if batch == 1 else []), (5 * bh, 3 * bw)]


@pytest.mark.parametrize("layout", ["design", "authors"])
@pytest.mark.parametrize("levels", [1, 2, 3, 4])
@pytest.mark.parametrize("batch", [1, 3])
def test_static_shape_model_equals_per_patch_reference(levels, layout, batch):
    model = random_model(levels, layout, seed=levels)
    reference = _reference(model)
    for height, width in _valid_sizes(levels, layout, batch):
        x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(height * width))
        diff = (model(x) - reference(x)).abs().max().item()
        assert diff <= 1e-5, f"{levels} levels {layout} {batch}x{height}x{width}: {diff}"


def test_patch_layout_changes_the_output():
    """Control for the equality test: the patch cut is visible in the output."""
    design = random_model(4, "design")
    authors = DMPHN(DMPHNConfig(4, "authors")).eval()
    authors.load_state_dict(design.state_dict())
    x = torch.rand(1, 3, 64, 128)
    assert (design(x) - authors(x)).abs().max().item() > 1e-3


def _authors_forward_1_2_4_8(model: DMPHN, images: torch.Tensor) -> torch.Tensor:
    """The authors' DMPHN_1_2_4_8 test forward, transcribed patch by patch (their orientation:
    level 2 splits height, level 3 width, level 4 height again; inputs shifted by -0.5)."""
    enc = [model.encoders[i] for i in range(4)]
    dec = [model.decoders[i] for i in range(4)]
    x = images - 0.5
    h, w = x.shape[2], x.shape[3]
    top, bottom = x[:, :, : h // 2], x[:, :, h // 2 :]
    lv3 = [top[..., : w // 2], top[..., w // 2 :], bottom[..., : w // 2], bottom[..., w // 2 :]]
    lv4 = [half for patch in lv3 for half in (patch[:, :, : h // 4], patch[:, :, h // 4 :])]
    f4 = [enc[3](p) for p in lv4]
    f4_pairs = [torch.cat((f4[2 * i], f4[2 * i + 1]), 2) for i in range(4)]  # join along height
    f4_top, f4_bottom = torch.cat(f4_pairs[0:2], 3), torch.cat(f4_pairs[2:4], 3)
    r4 = [dec[3](f) for f in f4_pairs]
    f3 = [enc[2](p + r) for p, r in zip(lv3, r4)]
    f3_top = torch.cat(f3[0:2], 3) + f4_top  # join along width
    f3_bottom = torch.cat(f3[2:4], 3) + f4_bottom
    r3_top, r3_bottom = dec[2](f3_top), dec[2](f3_bottom)
    f2 = torch.cat((enc[1](top + r3_top), enc[1](bottom + r3_bottom)), 2) + torch.cat((f3_top, f3_bottom), 2)
    r2 = dec[1](f2)
    f1 = enc[0](x + r2) + f2
    return dec[0](f1) + 0.5


def test_authors_layout_reproduces_the_authors_forward():
    model = random_model(4, "authors", seed=7)
    x = torch.rand(2, 3, 64, 48)
    assert (model(x) - _authors_forward_1_2_4_8(model, x)).abs().max().item() <= 1e-5


def _design_forward_1_2_4_8(model: DMPHN, images: torch.Tensor) -> torch.Tensor:
    """The design card, patch by patch: level 4 cuts 2x4 and joins along width, level 3 cuts
    2x2 and joins along height, level 2 cuts 1x2 and joins along width."""
    enc, dec = model.encoders, model.decoders
    x = images - 0.5
    h, w = x.shape[2], x.shape[3]

    def cut(rows, cols):
        return [x[:, :, r * h // rows : (r + 1) * h // rows, c * w // cols : (c + 1) * w // cols]
                for r in range(rows) for c in range(cols)]

    lv4, lv3, lv2 = cut(2, 4), cut(2, 2), cut(1, 2)
    f4 = [enc[3](p) for p in lv4]
    f4_joined = [torch.cat((f4[i], f4[i + 1]), 3) for i in (0, 2, 4, 6)]  # width pairs -> 2x2 grid
    r4 = [dec[3](f) for f in f4_joined]
    f3 = [enc[2](p + r) + f for p, r, f in zip(lv3, r4, f4_joined)]
    f3_joined = [torch.cat((f3[0], f3[2]), 2), torch.cat((f3[1], f3[3]), 2)]  # height pairs -> 1x2 grid
    r3 = [dec[2](f) for f in f3_joined]
    f2 = [enc[1](p + r) + f for p, r, f in zip(lv2, r3, f3_joined)]
    f2_joined = torch.cat(f2, 3)
    r2 = dec[1](f2_joined)
    return dec[0](enc[0](x + r2) + f2_joined) + 0.5


def test_design_layout_follows_the_design_card():
    model = random_model(4, "design", seed=3)
    x = torch.rand(2, 3, 48, 64)
    assert (model(x) - _design_forward_1_2_4_8(model, x)).abs().max().item() <= 1e-5


def test_encoder_and_decoder_shapes_and_layers():
    encoder, decoder = Encoder(), Decoder()
    features = encoder(torch.rand(2, 3, 32, 48))
    assert features.shape == (2, 128, 8, 12)
    assert decoder(features).shape == (2, 3, 32, 48)
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    # conv 3->32, 2 blocks (4 convs), s2 conv, 2 blocks, s2 conv, 2 blocks = 15 convs
    assert len(convs) == 15 and [c.stride for c in convs].count((2, 2)) == 2
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in decoder.modules()) == 2


def test_input_is_not_modified_and_output_keeps_shape():
    model = dmphn_1_2_4_8().eval()
    x = torch.rand(2, 3, 64, 128)
    before = x.clone()
    y = model(x)
    assert torch.equal(x, before)
    assert y.shape == x.shape and y.dtype == torch.float32


@pytest.mark.parametrize("shape", [(1, 3, 60, 128), (1, 3, 64, 100), (1, 4, 64, 128), (3, 64, 128)])
def test_invalid_input_raises_clear_value_error(shape):
    with pytest.raises(ValueError, match=r"expects \(B, 3, H, W\)|needs H a multiple"):
        dmphn(4)(torch.rand(*shape))


def test_deterministic_forward_and_seeded_init():
    x = torch.rand(1, 3, 32, 64)
    a, b = random_model(4, seed=11), random_model(4, seed=11)
    first = a(x)
    torch.testing.assert_close(first, b(x), rtol=0, atol=0)
    a(torch.rand(2, 3, 32, 64))  # another call in between must leave nothing behind
    torch.testing.assert_close(a(x), first, rtol=0, atol=0)
    assert not torch.equal(first, random_model(4, seed=12)(x))


@pytest.mark.parametrize("layout", ["design", "authors"])
def test_batch_items_do_not_mix(layout):
    """Patches are folded into the batch axis: each image's output must depend on that image only."""
    model = random_model(4, layout, seed=13)
    x = torch.rand(3, 3, 32, 64, generator=torch.Generator().manual_seed(13))
    together = model(x)
    for i in range(3):
        torch.testing.assert_close(together[i : i + 1], model(x[i : i + 1]), rtol=0, atol=1e-5)


def test_test_models_have_biases_that_move_the_output():
    """Guards the fixture: with zero biases, a runtime that drops them would pass every parity test."""
    model = random_model(4, seed=14)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 4 * 30 and all(conv.bias.std() > 0 for conv in convs)
    no_bias = random_model(4, seed=14)
    for module in no_bias.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.zeros_(module.bias)
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(14))
    assert (model(x) - no_bias(x)).abs().mean().item() > 1e-2  # 100x the fp32 parity bound


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_gradient_reaches_every_level(levels):
    with torch.enable_grad():
        model = dmphn(levels).train()
        x, target = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
        nn.functional.mse_loss(model(x), target).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("layout", ["design", "authors"])
@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_identity_start_passes_the_image_through_and_can_learn(levels, layout):
    model = init_identity(DMPHN(DMPHNConfig(levels, layout))).train()
    x = torch.rand(2, 3, 16, 32)
    torch.testing.assert_close(model(x), x, rtol=0, atol=1e-6)
    assert model.encoders[0].layers[0].weight[3:].std() > 0  # channels off the copy path stay random
    # Zeroed layers pass gradient on once they have moved: within a few steps every weight learns.
    target = torch.rand_like(x)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.enable_grad():
        for _ in range(5):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), target).backward()
            optimizer.step()
    for name, parameter in model.named_parameters():
        assert parameter.grad.abs().sum() > 0, name


def test_config_round_trip_and_names():
    config = DMPHNConfig(levels="1-2-4", layout="authors")
    assert config.levels == 3 and config.name == "DMPHN-1-2-4"
    assert DMPHNConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown DMPHN config keys"):
        DMPHNConfig.from_dict({"levels": 2, "depth": 3})
