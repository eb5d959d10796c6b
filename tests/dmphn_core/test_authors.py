"""The authors' published weights: manifest, verified download, cache, and fidelity to their outputs.

Downloads are served from 127.0.0.1 (a thread running http.server); nothing here reaches the
internet. Tests that need the real reference files find them through DMPHN_REFERENCE_DIR,
else ../shared/reference/dmphn-authors beside the repository, and skip saying so otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from dmphn_core import authors
from dmphn_core.checkpoint import import_authors_checkpoint
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import CACHE_ENV, file_sha256
from dmphn_core.imageio import image_to_tensor, read_image, tensor_to_image

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = authors.reference_dir(REPO_ROOT)
requires_reference = pytest.mark.skipif(
    REFERENCE is None,
    reason=f"no copy of the authors' reference files: set {authors.REFERENCE_DIR_ENV} or put it at "
    f"{REPO_ROOT.parent / 'shared' / 'reference' / 'dmphn-authors'}",
)


# -- a local server and fake repositories -----------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serving(handler) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` answered by ``handler`` (a request handler class) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve_folder(folder: Path):
    """``http://127.0.0.1:PORT`` serving ``folder`` until the block ends."""
    return serving(functools.partial(_QuietHandler, directory=str(folder)))


def closed_port_url() -> str:
    """A URL on a local port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def fake_repository(root: Path, tamper: str | None = None) -> dict[str, str]:
    """Small stand-in files at the repository's paths, and their manifest; ``tamper`` changes one after hashing."""
    files = {
        "checkpoints/DMPHN_1_2_4/encoder_lv1.pkl": b"encoder one" * 1000,
        "checkpoints/DMPHN_1_2_4/decoder_lv1.pkl": b"decoder one" * 1000,
        "test_samples/000001.png": b"frame",
    }
    manifest = {}
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
        manifest[relative] = hashlib.sha256(data).hexdigest()
    if tamper is not None:
        (root / tamper).write_bytes(files[tamper][:-1] + b"X")
    return manifest


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- manifest and names -----------------------------------------------------------------


def test_shipped_manifest_lists_both_variants_and_all_frames():
    manifest = authors.read_manifest()
    assert len(authors.weight_files("1-2-4-8", manifest)) == 8 and len(authors.weight_files("1-2-4", manifest)) == 6
    frames = authors.frame_files(manifest)
    assert sum(p.startswith("test_samples/") for p in frames) == 20 and len(frames) == 60
    assert all(len(digest) == 64 for digest in manifest.values())
    assert authors.COMMIT[:7] in authors.weights_label("1-2-4") and "DMPHN-1-2-4 " in authors.weights_label("1-2-4")
    with pytest.raises(DMPHNError, match="unknown authors' variant"):
        authors.weight_files("1-2")


def test_malformed_manifest_is_a_clear_error(tmp_path):
    bad = tmp_path / "m.sha256"
    bad.write_text("not a hash  some/file\n")
    with pytest.raises(DMPHNError, match="not a sha256sum line"):
        authors.read_manifest(bad)


def test_missing_cached_weights_say_how_to_fetch_them(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(DMPHNError, match=r"`dmphn-ckpt fetch-authors --variant 1-2-4`"):
        authors.resolve_model_alias("authors-1-2-4")
    with pytest.raises(DMPHNError, match=r"`dmphn-ckpt fetch-authors`"):
        authors.resolve_model_alias("authors")
    assert authors.resolve_model_alias("model.onnx") == Path("model.onnx") and authors.resolve_model_alias(None) is None
    cached = authors.cached_checkpoint_path("1-2-4")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert authors.resolve_model_alias("authors-1-2-4") == cached
    assert cached.is_relative_to(tmp_path)


# -- verified downloads (fake files; no reference copy needed) ---------------------------


def test_download_fills_the_cache_and_a_second_call_needs_no_network(tmp_path):
    served, cache = tmp_path / "served", tmp_path / "cache"
    manifest = fake_repository(served)
    with serve_folder(served) as url:
        paths = authors.fetch_files(manifest, url, cache, progress=False)
    assert [p.read_bytes() for p in paths] == [(served / r).read_bytes() for r in sorted(manifest)]
    # the server is gone: everything must come from the cache
    assert authors.fetch_files(manifest, closed_port_url(), cache, progress=False) == paths


def test_tampered_file_is_refused_and_nothing_partial_is_left(tmp_path):
    served, cache = tmp_path / "served", tmp_path / "cache"
    tampered = "checkpoints/DMPHN_1_2_4/encoder_lv1.pkl"
    manifest = fake_repository(served, tamper=tampered)
    with serve_folder(served) as url, pytest.raises(DMPHNError, match="checksum mismatch .*encoder_lv1.pkl"):
        authors.fetch_files(manifest, url, cache, progress=False)
    left = files_under(cache)
    assert not (cache / tampered).exists() and not any(p.name.endswith(".part") for p in left)
    # what is left is complete and verified (the file fetched before the tampered one)
    assert all(file_sha256(p) == manifest[p.relative_to(cache).as_posix()] for p in left)


def test_corrupt_cached_file_is_downloaded_again(tmp_path):
    served, cache = tmp_path / "served", tmp_path / "cache"
    manifest = fake_repository(served)
    broken = cache / "test_samples" / "000001.png"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"truncated")
    with serve_folder(served) as url:
        authors.fetch_files(manifest, url, cache, progress=False)
    assert broken.read_bytes() == b"frame"


@pytest.mark.parametrize("case", ["404", "refused", "timeout"])
def test_network_failures_are_one_line_errors_and_leave_nothing(tmp_path, case):
    served, cache = tmp_path / "served", tmp_path / "cache"
    manifest = fake_repository(served)
    with contextlib.ExitStack() as stack:
        if case == "404":
            empty = tmp_path / "empty"
            empty.mkdir()
            url, expected = stack.enter_context(serve_folder(empty)), "HTTP 404"
        elif case == "refused":
            url, expected = closed_port_url(), "cannot download"
        else:  # a server that accepts the connection and never answers
            listener = stack.enter_context(socket.socket())
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            url, expected = f"http://127.0.0.1:{listener.getsockname()[1]}", "timed out after 0.5 s"
        with pytest.raises(DMPHNError, match=expected) as info:
            authors.fetch_files(manifest, url, cache, timeout=0.5, progress=False)
    assert "\n" not in str(info.value)
    assert files_under(cache) == []


def test_an_http_error_leaves_no_socket_open(tmp_path, monkeypatch):
    """urllib's HTTPError holds the open response: it is closed when the error becomes one line,
    not left to the garbage collector (which warned "ResourceWarning: unclosed <socket.socket ...>")."""
    import urllib.error
    import urllib.request

    raised: list[urllib.error.HTTPError] = []
    real_urlopen = urllib.request.urlopen

    def urlopen_keeping_the_error(*args, **kwargs):
        try:
            return real_urlopen(*args, **kwargs)
        except urllib.error.HTTPError as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(urllib.request, "urlopen", urlopen_keeping_the_error)
    manifest = fake_repository(tmp_path / "served")
    empty = tmp_path / "empty"
    empty.mkdir()
    with serve_folder(empty) as url, pytest.raises(DMPHNError, match="HTTP 404"):
        authors.fetch_files(manifest, url, tmp_path / "cache", progress=False)
    assert len(raised) == 1 and raised[0].fp.closed


def test_base_url_may_be_a_local_folder(tmp_path):
    served, cache = tmp_path / "served", tmp_path / "cache"
    manifest = fake_repository(served)
    authors.fetch_files(manifest, str(served), cache, progress=False)
    assert (cache / "test_samples" / "000001.png").read_bytes() == b"frame"
    with pytest.raises(DMPHNError, match="neither a URL nor a folder"):
        authors.fetch_files(manifest, str(tmp_path / "nowhere"), cache, progress=False)


# -- the real files ---------------------------------------------------------------------


@requires_reference
def test_fetch_authors_from_a_local_server_equals_import_and_names_the_weights(tmp_path):
    # ~5 s: serves the 1-2-4 weights (21 MB) from the reference copy
    out = tmp_path / "a.pt"
    with serve_folder(REFERENCE) as url:
        fetched = authors.fetch_authors("1-2-4", out, base_url=url, cache=tmp_path / "cache", progress=False)
    imported = import_authors_checkpoint(REFERENCE / "checkpoints" / "DMPHN_1_2_4")
    assert fetched.state_dict.keys() == imported.state_dict.keys()
    assert all(torch.equal(fetched.state_dict[k], imported.state_dict[k]) for k in imported.state_dict)
    assert fetched.training["authors"]["commit"] == authors.COMMIT and fetched.config.layout == "authors"
    assert authors.cached_checkpoint_path("1-2-4", tmp_path / "cache").is_file() and out.is_file()
    assert authors.identify_variant(REFERENCE / "checkpoints" / "DMPHN_1_2_4") == "1-2-4"


@requires_reference
def test_frames_are_fetched_and_verified(tmp_path, monkeypatch):
    # the reference copy holds 4 of the 20 frames: fetch against a manifest of what it holds
    present = {r: d for r, d in authors.read_manifest().items() if (REFERENCE / r).is_file()}
    subset = tmp_path / "subset.sha256"
    subset.write_text("".join(f"{d}  {r}\n" for r, d in present.items()))
    monkeypatch.setattr(authors, "MANIFEST", subset)
    frames = tmp_path / "frames"
    with serve_folder(REFERENCE) as url:
        authors.fetch_files(authors.frame_files(), url, frames, progress=False)
    got = {p.relative_to(frames).as_posix() for p in files_under(frames)}
    assert got == {r for r in present if not r.startswith("checkpoints/")} and len(got) == 12


def _their_forward(model, x: torch.Tensor) -> torch.Tensor:
    """The authors' test scripts' order of cuts, joins and residual additions, written out patch by patch
    (levels 3 or 4, rows first), using ``model``'s per-level modules."""
    enc = lambda level, t: model.encoders[level - 1](t)
    dec = lambda level, t: model.decoders[level - 1](t)
    image = x - 0.5
    height, width = image.shape[-2:]
    halves = [image[:, :, : height // 2], image[:, :, height // 2 :]]
    quarters = [h[..., cols] for h in halves for cols in (slice(0, width // 2), slice(width // 2, width))]
    residual3 = [0.0] * 4
    extra3 = [0.0, 0.0]
    if model.config.levels == 4:
        eighths = [q[:, :, rows] for q in quarters for rows in (slice(0, height // 4), slice(height // 4, height // 2))]
        features4 = [enc(4, p) for p in eighths]
        per_quarter = [torch.cat(features4[2 * k : 2 * k + 2], 2) for k in range(4)]
        residual3 = [dec(4, f) for f in per_quarter]
        extra3 = [torch.cat(per_quarter[0:2], 3), torch.cat(per_quarter[2:4], 3)]
    features3 = [enc(3, p + r) for p, r in zip(quarters, residual3)]
    per_half = [torch.cat(features3[0:2], 3) + extra3[0], torch.cat(features3[2:4], 3) + extra3[1]]
    residual2 = [dec(3, f) for f in per_half]
    features2 = torch.cat([enc(2, p + r) for p, r in zip(halves, residual2)], 2) + torch.cat(per_half, 2)
    return dec(1, enc(1, image + dec(2, features2)) + features2) + 0.5


@pytest.mark.parametrize("levels", [3, 4])
def test_authors_layout_follows_their_test_scripts(levels):
    # ~1 s: random weights, 64x128; the structure does not depend on the size or the weights
    from tests.conftest import random_model

    model = random_model(levels, "authors", seed=levels)
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(model(x), _their_forward(model, x), atol=1e-6, rtol=0)


@requires_reference
@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, frame, min_identical",
    # One whole 720x1280 frame each: ~15-20 s on an idle 2-core CPU (several minutes on a busy one),
    # and a crop would not do: the patch splits depend on the whole frame. Hence the slow tier.
    # 1-2-4 matches their files in >= 99.99 % of pixels once their truncation is emulated. Their
    # 1-2-4-8 files differ more (82-91 % identical, up to 5 LSB, spread over the frame, not at
    # patch seams) although the structure is theirs (test above) and the arithmetic is the one
    # that matches 1-2-4: the bound records what the published files allow (docs/authors.md: "How close
    # to their published outputs").
    [("1-2-4", "000007.png", 0.999), ("1-2-4-8", "000001.png", 0.80)],
)
def test_authors_weights_reproduce_their_published_outputs(variant, frame, min_identical):
    model = import_authors_checkpoint(REFERENCE / "checkpoints" / authors.VARIANTS[variant]).build_model()
    with torch.inference_mode():
        output = tensor_to_image(model(image_to_tensor(read_image(REFERENCE / "test_samples" / frame))))
    published = read_image(REFERENCE / authors.published_outputs_folder(variant) / frame)
    result = authors.compare_with_published(output, (published * 255 + 0.5).astype(np.uint8))
    assert result["psnr_db"] >= authors.MIN_PSNR_VS_PUBLISHED_DB, result
    assert result["identical_truncated"] >= min_identical, result
    # rounding where they truncated puts ours half a step above theirs on average
    assert 0.3 <= result["mean_signed_lsb"] <= 0.6, result


def test_compare_with_published_emulates_their_truncation():
    output = np.array([[[0.2, 0.5, 0.999]]], dtype=np.float32)
    truncated = np.array([[[51, 127, 254]]], dtype=np.uint8)  # floor(x * 255)
    result = authors.compare_with_published(output, truncated)
    assert result["identical_truncated"] == 1.0 and result["max_abs_truncated_lsb"] == 0
    # rounded: 51, 128, 255 (127.5 and 254.7 round up), truncated: 51, 127, 254
    assert result["mean_signed_lsb"] == pytest.approx(2 / 3)
    off = authors.compare_with_published(output, truncated + np.array([[[0, 0, 1]]], dtype=np.uint8))
    assert off["identical_truncated"] == pytest.approx(2 / 3) and off["max_abs_truncated_lsb"] == 1


# -- time limits on a download (issue #27 item 5) --------------------------------------------


@contextlib.contextmanager
def trickle_server(piece: int, every_s: float, total: int = 1 << 20, for_at_most_s: float = 20.0) -> Iterator[str]:
    """``http://127.0.0.1:PORT``: every path answers ``total`` bytes (said in Content-Length), ``piece`` bytes
    every ``every_s`` s, and gives up after ``for_at_most_s`` s, so a test never hangs on it."""
    import time
    from http.server import BaseHTTPRequestHandler

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(total))
            self.end_headers()
            begin, sent = time.monotonic(), 0
            try:
                while sent < total and time.monotonic() - begin < for_at_most_s:
                    self.wfile.write(b"x" * piece)
                    self.wfile.flush()
                    sent += piece
                    time.sleep(every_s)
            except OSError:  # the client gave up: what the test wants
                pass

        def log_message(self, format, *args):
            pass

    with serving(Trickle) as url:
        yield url


def test_a_trickle_that_never_trips_the_read_timeout_is_stalled(tmp_path):
    import time

    manifest = {"checkpoints/DMPHN_1_2_4/encoder_lv1.pkl": "0" * 64}
    limits = authors.DownloadLimits(timeout=5, deadline_s=60, min_rate=64 * 1024, window_s=1.0)
    begin = time.monotonic()
    with trickle_server(piece=1024, every_s=0.05) as url, pytest.raises(DMPHNError, match=r"stalled at .* KiB/s .*--min-rate"):
        authors.fetch_files(manifest, url, tmp_path / "cache", limits=limits, progress=False)
    assert time.monotonic() - begin < 5 and files_under(tmp_path / "cache") == []


def test_the_whole_fetch_has_a_deadline(tmp_path):
    import time

    manifest = {"checkpoints/DMPHN_1_2_4/encoder_lv1.pkl": "0" * 64, "test_samples/000001.png": "1" * 64}
    limits = authors.DownloadLimits(timeout=5, deadline_s=1.0, min_rate=0)
    begin = time.monotonic()
    with trickle_server(piece=4096, every_s=0.05) as url, pytest.raises(DMPHNError, match=r"deadline of 1 s .*--deadline"):
        authors.fetch_files(manifest, url, tmp_path / "cache", limits=limits, progress=False)
    assert time.monotonic() - begin < 5 and files_under(tmp_path / "cache") == []


def test_the_cli_takes_the_limits(tmp_path):
    from typer.testing import CliRunner

    from cli.ckpt import app

    with trickle_server(piece=512, every_s=0.05) as url:
        result = CliRunner().invoke(app, ["fetch-authors", "--base-url", url, "--cache", str(tmp_path), "--deadline", "1"])
    assert result.exit_code == 2 and result.stderr.startswith("error: cannot download") and "deadline" in result.stderr
