// Factories of the compiled backends (private to the library); one source file each.
#pragma once

#include <memory>

#include "dmphn/backend.h"

namespace dmphn {

#ifdef DMPHN_WITH_TORCHSCRIPT
std::unique_ptr<Backend> make_torchscript_backend();
#endif
#ifdef DMPHN_WITH_AOTI
std::unique_ptr<Backend> make_aoti_backend();
#endif
#ifdef DMPHN_WITH_ONNXRUNTIME
std::unique_ptr<Backend> make_onnxruntime_backend();
#endif
#ifdef DMPHN_WITH_TENSORRT
std::unique_ptr<Backend> make_tensorrt_backend();
#endif
#ifdef DMPHN_WITH_OPENVINO
std::unique_ptr<Backend> make_openvino_backend();
#endif
#ifdef DMPHN_WITH_EXECUTORCH
std::unique_ptr<Backend> make_executorch_backend();
#endif

}  // namespace dmphn
