#include "dmphn/metadata.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "dmphn/errors.h"

namespace dmphn {

ArtifactMetadata ArtifactMetadata::parse(const std::string& json_text, const std::string& source) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& exc) {
    throw Error("metadata " + std::string(kMetadataKey) + " of " + source + " is not valid JSON: " + exc.what());
  }
  ArtifactMetadata meta;
  meta.json = json_text;
  try {
    meta.model = doc.value("model", std::string("DMPHN"));
    meta.precision = doc.value("precision", std::string("fp32"));
    const auto& block = doc.at("size_block_hw");
    if (!block.is_array() || block.size() != 2) throw Error("size_block_hw must be [bh, bw]");
    meta.size_block_hw = {block[0].get<int64_t>(), block[1].get<int64_t>()};
    if (meta.size_block_hw[0] < 1 || meta.size_block_hw[1] < 1) throw Error("size_block_hw must be positive");
    for (const auto& axis : doc.at("input").at("shape")) {
      if (axis.is_number_integer()) {
        meta.input_shape.emplace_back(axis.get<int64_t>());
        meta.input_shape_names.emplace_back();
      } else {
        meta.input_shape.emplace_back(std::nullopt);
        meta.input_shape_names.push_back(axis.is_string() ? axis.get<std::string>() : std::string("?"));
      }
    }
  } catch (const nlohmann::json::exception& exc) {
    throw Error("metadata " + std::string(kMetadataKey) + " of " + source + " lacks a field: " + exc.what());
  } catch (const Error& exc) {
    throw Error("metadata " + std::string(kMetadataKey) + " of " + source + ": " + exc.what());
  }
  return meta;
}

std::string ArtifactMetadata::input_shape_string() const {
  std::ostringstream text;
  for (size_t i = 0; i < input_shape.size(); ++i) {
    text << (i ? "x" : "");
    if (input_shape[i]) text << *input_shape[i];
    else text << input_shape_names[i];
  }
  return text.str();
}

bool ArtifactMetadata::accepts(const std::vector<int64_t>& shape) const {
  if (input_shape.empty()) return true;  // nothing recorded: let the runtime decide
  if (shape.size() != input_shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (input_shape[i] && *input_shape[i] != shape[i]) return false;
  }
  return true;
}

}  // namespace dmphn
