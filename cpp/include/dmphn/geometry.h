// Padding to the size block and cropping back, matching dmphn_core/geometry.py
// (pad_to_block / crop_to). The size block itself always comes from the artifact's
// metadata (size_block_hw): the hierarchy's geometry has one home, in Python.
#pragma once

#include <array>
#include <cstdint>

#include "dmphn/tensor.h"

namespace dmphn {

// (H, W) rounded up to multiples of block (bh, bw).
std::array<int64_t, 2> padded_size(int64_t height, int64_t width, std::array<int64_t, 2> block);

// Pad (N, C, H, W) on the bottom/right to the next multiple of ``block``, like
// F.pad(mode="reflect") (mirror without repeating the edge). Reflection needs each pad to
// be smaller than its side; otherwise both axes use edge replication, as pad_to_block.
Tensor pad_to_block(const Tensor& x, std::array<int64_t, 2> block);

// Top-left (N, C, height, width) of (N, C, H, W).
Tensor crop_to(const Tensor& x, int64_t height, int64_t width);

}  // namespace dmphn
