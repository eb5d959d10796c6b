"""A small stand-in for the ``tensorrt`` Python package (TensorRT 10.x), for CPU tests.

It has only the classes, methods and attributes our code calls, with the documented
signatures and the documented failure values (``None`` where TensorRT returns nullptr,
``False`` where it returns false). It records every call in ``state.log`` and fails on
request (``state.fail``), so tests can drive our call sequence and every error branch.
It checks *our* logic and error handling, not TensorRT: nothing here is TensorRT's
behaviour beyond what its API reference states, and the engine it "builds" copies its input
to its output (host memory, ``ctypes.memmove``).

Modelled on purpose:

- the ONNX parser gives each node one layer; ops in ``state.expansions`` become a chain of
  layers joined by parser-made tensors (``(Unnamed Layer* N) [op]_output``); only the first
  layer carries the node name (the real parser gives further layers unique variants of it or
  helper names: our code must depend on neither), an unnamed node is ``node_of_<first output>``
  (as onnx-tensorrt's getNodeName); initializers are weights, not layer inputs;
- ``set_tensor_address`` refuses addresses not aligned to ``state.alignment`` (TensorRT: 256);
- inside a fake CUDA-graph capture (``state.capture`` a list) ``execute_async_v3`` records a
  launch instead of running it; a replayed launch reads the context's bindings *at replay*,
  a stand-in for a graph that refers to state its context owns.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import json
import math
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import onnx
import torch

ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"
CACHE_MAGIC = b"FAKE-TIMING-CACHE:"


@dataclass
class FakeState:
    version: str = "10.16.0.72"
    compute_capability: str = "9.0"
    #: methods that return their failure value: "create_execution_context", "set_tensor_address",
    #: "execute_async_v3", "build_serialized_network", "parse_from_file", "create_timing_cache",
    #: "create_network", "create_builder_config", "create_optimization_profile" (None),
    #: "add_optimization_profile" (-1), "serialize" (a timing cache's, None); "Builder": the
    #: constructor raises pybind11's TypeError for a factory that returned nullptr
    fail: set[str] = field(default_factory=set)
    #: layers (by name) without an fp32 implementation: a build that must obey their fp32 pin fails
    no_fp32_tactic: set[str] = field(default_factory=set)
    alignment: int = 256
    expansions: dict[str, int] = field(default_factory=dict)
    log: list[tuple] = field(default_factory=list)
    capture: list | None = None
    networks: list[Any] = field(default_factory=list)
    configs: list[Any] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)

    def calls(self, name: str) -> list[tuple]:
        return [entry for entry in self.log if entry[0] == name]


def new_fake_tensorrt(state: FakeState | None = None) -> types.ModuleType:
    """A fresh fake ``tensorrt`` module; its state is ``module.state``."""
    state = state or FakeState()
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # importlib.util.find_spec needs one
    trt.__version__ = state.version
    trt.state = state

    class DataType(enum.Enum):
        FLOAT = 0
        HALF = 1
        INT32 = 3
        BOOL = 4
        INT64 = 8

    trt.DataType = DataType
    trt.float32, trt.float16, trt.int32, trt.int64, trt.bool = (
        DataType.FLOAT, DataType.HALF, DataType.INT32, DataType.INT64, DataType.BOOL)

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    severity_enum = Severity

    class ILogger:
        Severity = severity_enum

        def __init__(self) -> None:
            pass

        def log(self, severity, msg) -> None:
            pass

    class Logger(ILogger):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (
            Severity.INTERNAL_ERROR, Severity.ERROR, Severity.WARNING, Severity.INFO, Severity.VERBOSE)

        def __init__(self, min_severity=Severity.WARNING) -> None:
            super().__init__()
            self.min_severity = min_severity

    trt.ILogger, trt.Logger = ILogger, Logger

    flags = (["TF32"] if state.version.startswith("11.")
             else ["FP16", "TF32", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"])
    trt.BuilderFlag = enum.Enum("BuilderFlag", flags)
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])

    # -- network ---------------------------------------------------------------------
    class ITensor:
        def __init__(self, name: str, dtype, shape=()) -> None:
            self.name, self.dtype, self.shape = name, dtype, tuple(shape)

    class ILayer:
        def __init__(self, name: str, op: str, inputs: list, outputs: list) -> None:
            self.name, self.type = name, op
            self._inputs, self._outputs = inputs, outputs
            self._precision = None
            self.output_types: dict[int, Any] = {}

        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))

        def get_input(self, index: int):
            return self._inputs[index]  # None for an optional input left out, as the binding returns

        def get_output(self, index: int):
            return self._outputs[index]

        @property
        def precision(self):
            return self._precision if self._precision is not None else DataType.FLOAT

        @precision.setter
        def precision(self, dtype) -> None:
            self._precision = dtype

        @property
        def precision_is_set(self) -> bool:
            return self._precision is not None

        def set_output_type(self, index: int, dtype) -> None:
            self.output_types[index] = dtype

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.layers: list[ILayer] = []
            self.inputs: list[ITensor] = []
            self.outputs: list[ITensor] = []

        num_layers = property(lambda self: len(self.layers))
        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_layer(self, index: int) -> ILayer:
            return self.layers[index]

        def get_input(self, index: int) -> ITensor:
            return self.inputs[index]

        def get_output(self, index: int) -> ITensor:
            return self.outputs[index]

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger) -> None:
            self.network, self.logger = network, logger
            self.errors: list[str] = []

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, index: int) -> str:
            return self.errors[index]

        def parse_from_file(self, model: str) -> bool:
            state.log.append(("parse_from_file", model))
            if "parse_from_file" in state.fail:
                self.errors.append("In node 0 (importConv): UNSUPPORTED_NODE: fake failure")
                return False
            _parse_into(self.network, onnx.load(model, load_external_data=False))
            return True

    def _parse_into(network: INetworkDefinition, model: onnx.ModelProto) -> None:
        inferred = onnx.shape_inference.infer_shapes(model)
        dtypes = {info.name: info.type.tensor_type.elem_type
                  for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
        as_trt = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.INT64: DataType.INT64,
                  onnx.TensorProto.INT32: DataType.INT32, onnx.TensorProto.BOOL: DataType.BOOL}
        initializers = {init.name for init in model.graph.initializer}
        tensors: dict[str, ITensor] = {}
        for graph_input in model.graph.input:
            if graph_input.name in initializers:
                continue
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in graph_input.type.tensor_type.shape.dim]
            tensors[graph_input.name] = ITensor(graph_input.name, DataType.FLOAT, dims)
            network.inputs.append(tensors[graph_input.name])
        for node in model.graph.node:
            inputs = [tensors.get(name) for name in node.input if name not in initializers]
            outputs = [ITensor(name, as_trt.get(dtypes.get(name), DataType.FLOAT)) for name in node.output]
            steps = state.expansions.get(node.op_type, 1)
            for step in range(steps):
                index = len(network.layers)
                name = (node.name or f"node_of_{node.output[0]}") if step == 0 else f"(Unnamed Layer* {index}) [{node.op_type}]"
                last = step == steps - 1
                layer_outputs = outputs if last else [ITensor(f"(Unnamed Layer* {index}) [{node.op_type}]_output",
                                                              DataType.FLOAT)]
                network.layers.append(ILayer(name, node.op_type, inputs, layer_outputs))
                inputs = layer_outputs
            tensors.update((t.name, t) for t in outputs)
        for graph_output in model.graph.output:
            network.outputs.append(tensors[graph_output.name])

    # -- builder ---------------------------------------------------------------------
    class ITimingCache:
        def __init__(self, compute_capability: str) -> None:
            self.compute_capability = compute_capability

        def serialize(self) -> bytes | None:
            state.log.append(("serialize_timing_cache",))
            if "serialize" in state.fail:
                return None
            return CACHE_MAGIC + self.compute_capability.encode()

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, input: str, min, opt, max) -> None:
            self.shapes[input] = (tuple(min), tuple(opt), tuple(max))

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags = {trt.BuilderFlag.TF32} if hasattr(trt.BuilderFlag, "TF32") else set()
            self.pools: dict[Any, int] = {}
            self.profiles: list[IOptimizationProfile] = []
            self.timing_cache: ITimingCache | None = None
            state.configs.append(self)

        def set_memory_pool_limit(self, pool, pool_size: int) -> None:
            self.pools[pool] = pool_size

        def set_flag(self, flag) -> None:
            self.flags.add(flag)

        def clear_flag(self, flag) -> None:
            self.flags.discard(flag)

        def get_flag(self, flag) -> bool:
            return flag in self.flags

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            if "add_optimization_profile" in state.fail:
                return -1  # "or -1 if the input is not valid"
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache: bytes):
            blob = bytes(serialized_timing_cache)
            state.log.append(("create_timing_cache", blob))
            if not blob:
                return ITimingCache(state.compute_capability)
            if "create_timing_cache" in state.fail or not blob.startswith(CACHE_MAGIC):
                return None  # "the pointer to ITimingCache created": nullptr on a blob it cannot read
            return ITimingCache(blob[len(CACHE_MAGIC):].decode())

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            state.log.append(("set_timing_cache", cache.compute_capability, ignore_mismatch))
            if cache.compute_capability != state.compute_capability and not ignore_mismatch:
                return False  # "A failure will be reported if the CUDA device property ... is different"
            self.timing_cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self.timing_cache

    class Builder:
        def __init__(self, logger) -> None:
            if "Builder" in state.fail:
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.logger = logger

        def create_network(self, flags: int = 0) -> INetworkDefinition | None:
            if "create_network" in state.fail:
                return None
            network = INetworkDefinition(flags)
            state.networks.append(network)
            return network

        def create_builder_config(self) -> IBuilderConfig | None:
            return None if "create_builder_config" in state.fail else IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile | None:
            return None if "create_optimization_profile" in state.fail else IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
            state.log.append(("build_serialized_network",))
            if "build_serialized_network" in state.fail:
                self.logger.log(Severity.ERROR, "fake: no implementation obeys reformatting-free rules")
                return None
            stuck = [layer.name for layer in network.layers if layer.name in state.no_fp32_tactic
                     and layer.precision_is_set and layer.precision == DataType.FLOAT]
            if stuck and config.get_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS):
                self.logger.log(Severity.ERROR, f"fake: no implementation of layer {stuck[0]} obeys the requested constraints")
                return None
            for name in stuck:  # PREFER: the constraint is broken, with a warning
                self.logger.log(Severity.WARNING, f"fake: layer {name} runs in fp16, its fp32 constraint could not be met")
            dims = list(network.get_input(0).shape)
            profile = config.profiles[0].shapes[network.get_input(0).name] if config.profiles else (dims, dims, dims)
            meta = {"version": state.version, "compute_capability": state.compute_capability,
                    "input": network.get_input(0).name, "output": network.get_output(0).name, "dims": dims,
                    "min": list(profile[0]), "max": list(profile[2])}
            return ENGINE_MAGIC + json.dumps(meta).encode()

    # -- runtime ---------------------------------------------------------------------
    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self.input_shape: tuple[int, ...] | None = None
            self.addresses: dict[str, int] = {}
            state.contexts.append(self)
            self.id = len(state.contexts)

        def set_input_shape(self, name: str, shape) -> bool:
            shape = tuple(int(d) for d in shape)
            state.log.append(("set_input_shape", self.id, name, shape))
            meta = self.engine.meta
            if name != meta["input"] or len(shape) != len(meta["dims"]):
                return False
            if not all(lo <= d <= hi for d, lo, hi in zip(shape, meta["min"], meta["max"])):
                return False
            self.input_shape = shape
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self.input_shape if self.input_shape is not None else tuple(self.engine.meta["dims"])

        def set_tensor_address(self, name: str, memory: int) -> bool:
            state.log.append(("set_tensor_address", self.id, name, memory))
            if "set_tensor_address" in state.fail or memory % state.alignment:
                return False
            if name not in (self.engine.meta["input"], self.engine.meta["output"]):
                return False
            self.addresses[name] = memory
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            state.log.append(("execute_async_v3", self.id, stream_handle))
            meta = self.engine.meta
            if "execute_async_v3" in state.fail or self.input_shape is None:
                return False
            if meta["input"] not in self.addresses or meta["output"] not in self.addresses:
                return False
            if state.capture is not None:
                state.capture.append(self._execute)
            else:
                self._execute()
            return True

        def _execute(self) -> None:
            nbytes = math.prod(self.input_shape) * 4
            ctypes.memmove(self.addresses[self.engine.meta["output"]], self.addresses[self.engine.meta["input"]], nbytes)

    class ICudaEngine:
        def __init__(self, meta: dict) -> None:
            self.meta = meta

        num_io_tensors = property(lambda self: 2)

        def get_tensor_name(self, index: int) -> str:
            return (self.meta["input"], self.meta["output"])[index]

        def get_tensor_dtype(self, name: str):
            return DataType.FLOAT

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return tuple(self.meta["dims"])

        def create_execution_context(self):
            state.log.append(("create_execution_context",))
            if "create_execution_context" in state.fail:
                return None
            return IExecutionContext(self)

    class Runtime:
        def __init__(self, logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, serialized_engine: bytes):
            state.log.append(("deserialize_cuda_engine",))
            blob = bytes(serialized_engine)
            if not blob.startswith(ENGINE_MAGIC):
                self.logger.log(Severity.ERROR, "fake: magic tag does not match")
                return None
            meta = json.loads(blob[len(ENGINE_MAGIC):])
            if meta["version"] != state.version or meta["compute_capability"] != state.compute_capability:
                self.logger.log(Severity.ERROR, "fake: engine plan is not compatible")
                return None
            return ICudaEngine(meta)

    trt.ITensor, trt.ILayer, trt.INetworkDefinition, trt.OnnxParser = ITensor, ILayer, INetworkDefinition, OnnxParser
    trt.ITimingCache, trt.IOptimizationProfile, trt.IBuilderConfig, trt.Builder = (
        ITimingCache, IOptimizationProfile, IBuilderConfig, Builder)
    trt.IExecutionContext, trt.ICudaEngine, trt.Runtime = IExecutionContext, ICudaEngine, Runtime
    return trt


def install_fake_tensorrt(monkeypatch, **state: Any) -> types.ModuleType:
    """Put a fresh fake ``tensorrt`` in ``sys.modules`` and pretend CUDA is there; returns it."""
    trt = new_fake_tensorrt(FakeState(**state))
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return trt
