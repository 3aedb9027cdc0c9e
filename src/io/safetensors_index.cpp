#include "io/safetensors_index.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace thinkeys {

std::map<std::string, std::string> parse_safetensors_index(const std::string& json_text,
                                                           const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": malformed JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(origin + ": missing 'weight_map'");
  std::map<std::string, std::string> shards;
  for (auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) throw Error(origin + ": weight_map entries must be file names");
    auto fname = file.get<std::string>();
    if (fname.empty() || fname.find('/') != std::string::npos ||
        fname.find("..") != std::string::npos || fname.find('\0') != std::string::npos)
      throw Error(origin + ": shard name '" + fname + "' must be a plain file name");
    shards.emplace(name, std::move(fname));
  }
  return shards;
}

}  // namespace thinkeys
