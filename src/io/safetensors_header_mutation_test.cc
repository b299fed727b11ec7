// Deterministic robustness test: thousands of mutated and truncated headers must each give OK or
// an error, never a crash, hang or sanitizer report. The libFuzzer target explores further;
// this one runs in every build.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "io/safetensors_header.h"

namespace weightsync {
namespace {

std::vector<uint8_t> ValidFile() {
  std::vector<SafetensorsTensorInfo> tensors = {
      {"model.embed_tokens.weight", DType::kBF16, {4, 8}, 0, 64},
      {"model.layers.0.mlp.weight_scale_inv", DType::kF32, {2, 2}, 64, 80},
      {"model.layers.0.mlp.weight", DType::kF8E4M3, {4, 4}, 80, 96},
      {"empty", DType::kI64, {0, 3}, 96, 96},
      {"scalar", DType::kU8, {}, 96, 97},
  };
  auto prefix = SerializeSafetensorsHeader(tensors, {{"format", "pt"}});
  std::vector<uint8_t> file(prefix->begin(), prefix->end());
  file.resize(file.size() + 97, 0x5a);
  return file;
}

std::vector<uint8_t> Mutate(std::vector<uint8_t> file, std::mt19937_64& random) {
  static constexpr char kInteresting[] = "{}[]\",:-0123456789eE. \\u\xff\x80";
  auto pick = [&](size_t n) { return n == 0 ? 0 : static_cast<size_t>(random() % n); };
  int edits = 1 + static_cast<int>(random() % 4);
  for (int e = 0; e < edits; ++e) {
    switch (random() % 7) {
      case 0:  // flip a bit
        if (!file.empty()) file[pick(file.size())] ^= static_cast<uint8_t>(1u << (random() % 8));
        break;
      case 1:  // a JSON-significant character
        if (!file.empty()) file[pick(file.size())] = kInteresting[pick(sizeof(kInteresting) - 1)];
        break;
      case 2:  // insert
        file.insert(file.begin() + static_cast<std::ptrdiff_t>(pick(file.size() + 1)),
                    static_cast<uint8_t>(kInteresting[pick(sizeof(kInteresting) - 1)]));
        break;
      case 3:  // delete a run
        if (!file.empty()) {
          size_t at = pick(file.size());
          size_t count = std::min(file.size() - at, 1 + pick(8));
          file.erase(file.begin() + static_cast<std::ptrdiff_t>(at),
                     file.begin() + static_cast<std::ptrdiff_t>(at + count));
        }
        break;
      case 4:  // truncate
        file.resize(pick(file.size() + 1));
        break;
      case 5:  // rewrite one byte of the length prefix
        if (file.size() >= 8) file[pick(8)] = static_cast<uint8_t>(random());
        break;
      default:  // duplicate a slice (repeats keys and objects)
        if (!file.empty()) {
          size_t at = pick(file.size());
          size_t count = std::min(file.size() - at, 1 + pick(40));
          std::vector<uint8_t> slice(file.begin() + static_cast<std::ptrdiff_t>(at),
                                     file.begin() + static_cast<std::ptrdiff_t>(at + count));
          file.insert(file.begin() + static_cast<std::ptrdiff_t>(pick(file.size())), slice.begin(),
                      slice.end());
        }
        break;
    }
  }
  return file;
}

TEST(SafetensorsHeaderMutation, NeverCrashesOnMutatedHeaders) {
  const std::vector<uint8_t> valid = ValidFile();
  ASSERT_TRUE(ParseSafetensorsHeader(valid, valid.size()).ok());
  std::mt19937_64 random(20240611);
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> file = Mutate(valid, random);
    Result<SafetensorsHeader> header = ParseSafetensorsHeader(file, file.size(), 4096);
    if (header.ok()) {
      ++accepted;
      // Whatever was accepted must be internally consistent.
      uint64_t covered = 0;
      for (const SafetensorsTensorInfo& t : header->tensors) {
        ASSERT_EQ(t.begin, covered);
        covered = t.end;
      }
      ASSERT_EQ(covered, header->data_size);
      ASSERT_EQ(header->data_offset() + header->data_size, file.size());
    } else {
      ++refused;
      ASSERT_FALSE(header.status().message().empty());
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(accepted, 0);  // some mutations only touch tensor bytes or padding
}

TEST(SafetensorsHeaderMutation, NeverCrashesOnEveryTruncation) {
  const std::vector<uint8_t> valid = ValidFile();
  const uint64_t data_offset = ParseSafetensorsHeader(valid, valid.size())->data_offset();
  for (size_t length = 0; length < valid.size(); ++length) {
    std::span<const uint8_t> prefix(valid.data(), length);
    // A prefix holding the whole header is enough to parse it; a shorter one is refused.
    EXPECT_EQ(ParseSafetensorsHeader(prefix, valid.size()).ok(), length >= data_offset) << length;
    // A truncated file is always refused: its data region is short.
    EXPECT_FALSE(ParseSafetensorsHeader(prefix, length).ok()) << length;
  }
}

}  // namespace
}  // namespace weightsync
