"""Stand-ins for TensorRT and CUDA that let CPU tests drive the TensorRT code paths."""
