"""Triton Python-backend model: DMPHN through the dmphn-deploy toolkit's own runner.

Written as ``<repo>/<model>/1/model.py`` by ``dmphn-export triton --backend python``. The
toolkit must be importable by the backend's Python (``dmphn-serve`` puts it on PYTHONPATH;
in a Triton container, ``pip install`` it there).

The config's ``parameters`` say what to run: ``runtime`` (a runner key of
``runtimes.runner_class``: ``ort``, or ``et`` for an ExecuTorch program of batch 1),
``artifact`` (a file beside this one), ``precision`` and ``threads`` (0: the runtime's
default). Dynamic batching hands ``execute`` several requests at once; their images are
run as one batch, in chunks of the artifact's batch when that is fixed.

Each request is checked on its own: a request with NaN/Inf values gets an error response,
and the others of the same batch are still served. (Triton itself rejects wrong shapes,
dtypes and batches over ``max_batch_size`` before they get here.)
"""

import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME
from runtimes import runner_class


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
        folder = Path(args["model_repository"]) / args["model_version"]
        options = {"device": "cpu", "precision": params.get("precision", "fp32")}
        threads = int(params.get("threads") or 0)
        if threads:
            options["threads"] = threads
        self.runner = runner_class(params.get("runtime", "ort"))(folder / params["artifact"], **options)
        self.runner.activate()
        shape = self.runner.input_shape
        #: the artifact's own batch size when it is static (None: any batch)
        self.fixed_batch = shape[0] if shape is not None else None

    def execute(self, requests):
        responses = [None] * len(requests)
        images, owners = [], []
        for index, request in enumerate(requests):
            x = _to_numpy(pb_utils.get_input_tensor_by_name(request, INPUT_NAME))
            if not np.isfinite(x).all():
                responses[index] = _error(f"input {INPUT_NAME!r} holds NaN or Inf values", invalid_argument=True)
                continue
            images.append(x)
            owners.append(index)
        if not images:
            return responses
        try:
            output = self._run(np.concatenate(images) if len(images) > 1 else images[0])
        except Exception as exc:  # noqa: BLE001 - every request of the batch must get an answer
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            for index in owners:
                responses[index] = _error(f"inference failed: {message}")
            return responses
        start = 0
        for index, x in zip(owners, images):
            y = np.ascontiguousarray(output[start:start + len(x)])
            responses[index] = pb_utils.InferenceResponse(output_tensors=[_from_numpy(OUTPUT_NAME, y)])
            start += len(x)
        return responses

    def _run(self, batch):
        """(B, 3, H, W) -> (B, 3, H, W); a fixed-batch artifact runs in chunks, the last one zero-padded."""
        if self.fixed_batch is None or len(batch) == self.fixed_batch:
            return self.runner.infer(batch)
        size = self.fixed_batch
        outputs = []
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            count = len(chunk)
            if count < size:
                chunk = np.concatenate([chunk, np.zeros((size - count, *chunk.shape[1:]), chunk.dtype)])
            outputs.append(self.runner.infer(chunk)[:count])
        return np.concatenate(outputs)

    def finalize(self):
        self.runner.deactivate()


# Tensors cross the backend boundary through DLPack, not as_numpy()/Tensor(name, array): the
# stub's numpy bridge was built against numpy 1.x and reads numpy 2 arrays as empty.
def _to_numpy(tensor):
    return torch.utils.dlpack.from_dlpack(tensor.to_dlpack()).numpy()


def _from_numpy(name, array):
    return pb_utils.Tensor.from_dlpack(name, torch.utils.dlpack.to_dlpack(torch.from_numpy(array)))


def _error(message, invalid_argument=False):
    """An error response; bad input is INVALID_ARG (HTTP 400), as Triton's own input checks answer."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None) if invalid_argument else None
    error = pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)
