// Helpers shared by the io tests: scratch directories and hand-made safetensors bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync::testing {

// A fresh directory under the build tree (or $TMPDIR), removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
  // Names of everything in the directory, sorted (hidden files included).
  std::vector<std::string> List() const;

 private:
  std::filesystem::path path_;
};

// 8-byte little-endian length, the JSON text as given (no padding), then `data`.
std::vector<uint8_t> MakeSafetensorsBytes(std::string_view header_json, std::string_view data);
void WriteBytes(const std::filesystem::path& path, std::span<const uint8_t> bytes);
void WriteText(const std::filesystem::path& path, std::string_view text);
std::vector<uint8_t> ReadBytes(const std::filesystem::path& path);
std::string ReadText(const std::filesystem::path& path);

// A deterministic byte pattern the interop tests recompute in Python.
uint8_t PatternByte(uint64_t seed, uint64_t index);

}  // namespace weightsync::testing
