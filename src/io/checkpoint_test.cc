#include "io/checkpoint.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "io/io_test_util.h"

namespace weightsync {
namespace {

using testing::MakeSafetensorsBytes;
using testing::ScratchDir;
using testing::WriteBytes;
using testing::WriteText;

// A file with one U8 tensor per name, each 2 bytes: the name's first letter twice.
void WriteFileWith(const std::filesystem::path& path, const std::vector<std::string>& names) {
  std::string json = "{";
  std::string data;
  for (const std::string& name : names) {
    json += StrCat(json.size() > 1 ? "," : "", "\"", name, "\":{\"dtype\":\"U8\",\"shape\":[2],",
                   "\"data_offsets\":[", data.size(), ",", data.size() + 2, "]}");
    data += std::string(2, name[0]);
  }
  WriteBytes(path, MakeSafetensorsBytes(json + "}", data));
}

void ExpectErrorMentions(const Status& status, std::string_view a, std::string_view b) {
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(a), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find(b), std::string::npos) << status.ToString();
}

TEST(Checkpoint, OpensASingleFile) {
  ScratchDir dir;
  WriteFileWith(dir / "m.safetensors", {"b", "a"});
  auto checkpoint = Checkpoint::Open(dir / "m.safetensors");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ(checkpoint->names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(checkpoint->total_bytes(), 4u);
  auto a = checkpoint->Find("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(std::memcmp(a->data, "aa", 2), 0);
  EXPECT_EQ(checkpoint->Find("c").status().code(), StatusCode::kNotFound);
}

TEST(Checkpoint, OpensAnIndexedDirectory) {
  ScratchDir dir;
  WriteFileWith(dir / "s1.safetensors", {"a", "b"});
  WriteFileWith(dir / "s2.safetensors", {"c"});
  WriteFileWith(dir / "unrelated.safetensors", {"a"});  // not in the index: ignored
  WriteText(dir / "model.safetensors.index.json",
            R"({"metadata":{"total_size":6},"weight_map":{"a":"s1.safetensors",)"
            R"("b":"s1.safetensors","c":"s2.safetensors"}})");
  auto checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ(checkpoint->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(checkpoint->files().size(), 2u);
  EXPECT_EQ(checkpoint->metadata().at("total_size"), "6");
  auto c = checkpoint->Find("c");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(std::memcmp(c->data, "cc", 2), 0);
  EXPECT_TRUE(checkpoint->Contains("b"));
  EXPECT_EQ(checkpoint->FileOf("c").value()->path().filename(), "s2.safetensors");
}

TEST(Checkpoint, RefusesInconsistentIndexes) {
  ScratchDir dir;
  WriteFileWith(dir / "s1.safetensors", {"a", "b"});
  WriteFileWith(dir / "s2.safetensors", {"b", "c"});
  const auto index = dir / "model.safetensors.index.json";

  WriteText(index, R"({"weight_map":{"a":"s1.safetensors","x":"gone.safetensors"}})");
  ExpectErrorMentions(Checkpoint::Open(dir.path()).status(), "gone.safetensors", "No such file");

  WriteText(index, R"({"weight_map":{"a":"s1.safetensors","z":"s1.safetensors",)"
                   R"("b":"s1.safetensors"}})");
  ExpectErrorMentions(Checkpoint::Open(dir.path()).status(), "tensor \"z\"", "does not contain it");

  WriteText(index, R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors",)"
                   R"("c":"s2.safetensors"}})");
  ExpectErrorMentions(Checkpoint::Open(dir.path()).status(), "tensor \"b\"", "in both");

  WriteText(index, R"({"weight_map":{"a":"s1.safetensors"}})");
  ExpectErrorMentions(Checkpoint::Open(dir.path()).status(), "\"b\"", "does not list");

  WriteText(index, R"({"weight_map":{"a":"s1.safetensors","a":"s2.safetensors"}})");
  ExpectErrorMentions(Checkpoint::Open(dir.path()).status(), "\"a\"", "appears twice");

  WriteText(index, R"({"weight_map":{"a":"../s1.safetensors"}})");
  ExpectErrorMentions(Checkpoint::Open(dir.path()).status(), "index", "leaves the directory");

  WriteText(index, R"({"weight_map":[]})");
  ExpectErrorMentions(Checkpoint::Open(dir.path()).status(), "index", "weight_map");

  WriteText(index, R"({"weight_map":)");
  ExpectErrorMentions(Checkpoint::Open(dir.path()).status(), "index", "not valid JSON");
}

TEST(Checkpoint, OpensEveryFileWithoutAnIndex) {
  ScratchDir dir;
  WriteFileWith(dir / "x.safetensors", {"a"});
  WriteFileWith(dir / "y.safetensors", {"b"});
  WriteText(dir / "config.json", "{}");
  auto checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ(checkpoint->names(), (std::vector<std::string>{"a", "b"}));

  WriteFileWith(dir / "z.safetensors", {"a"});
  auto clash = Checkpoint::Open(dir.path());
  ExpectErrorMentions(clash.status(), "x.safetensors", "z.safetensors");
}

TEST(Checkpoint, ErrorsForMissingAndEmptyPaths) {
  ScratchDir dir;
  EXPECT_EQ(Checkpoint::Open(dir / "nothing").status().code(), StatusCode::kNotFound);
  ExpectErrorMentions(Checkpoint::Open(dir.path()).status(), dir.path().string(),
                      "no .safetensors files");
}

// Opens `path` on a thread. Opening must never wait for a FIFO's writer: if it is still running
// after 10 s it is blocked, so the FIFO's write end is opened to release it and the test fails.
Status OpenWithoutWaitingFor(const std::filesystem::path& fifo, const std::filesystem::path& path) {
  std::promise<Status> done;
  std::future<Status> result = done.get_future();
  std::thread opener([&] { done.set_value(Checkpoint::Open(path).status()); });
  const bool blocked = result.wait_for(std::chrono::seconds(10)) != std::future_status::ready;
  if (blocked) ::close(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  opener.join();
  EXPECT_FALSE(blocked) << "opening " << path << " waited for a writer of " << fifo;
  return result.get();
}

TEST(Checkpoint, RefusesFifosWithoutBlocking) {
  ScratchDir dir;
  std::filesystem::create_directory(dir / "plain");
  WriteFileWith(dir / "plain" / "x.safetensors", {"a"});
  ASSERT_EQ(::mkfifo((dir / "plain" / "y.safetensors").c_str(), 0600), 0);
  ExpectErrorMentions(OpenWithoutWaitingFor(dir / "plain" / "y.safetensors", dir / "plain"),
                      "y.safetensors", "is a FIFO, not a regular file");

  std::filesystem::create_directory(dir / "indexed");
  ASSERT_EQ(::mkfifo((dir / "indexed" / "s1.safetensors").c_str(), 0600), 0);
  WriteText(dir / "indexed" / kSafetensorsIndexName, R"({"weight_map":{"a":"s1.safetensors"}})");
  ExpectErrorMentions(OpenWithoutWaitingFor(dir / "indexed" / "s1.safetensors", dir / "indexed"),
                      "s1.safetensors", "is a FIFO");

  std::filesystem::create_directory(dir / "fifo_index");
  WriteFileWith(dir / "fifo_index" / "s1.safetensors", {"a"});
  const auto index = dir / "fifo_index" / kSafetensorsIndexName;
  ASSERT_EQ(::mkfifo(index.c_str(), 0600), 0);
  ExpectErrorMentions(OpenWithoutWaitingFor(index, dir / "fifo_index"), kSafetensorsIndexName,
                      "is a FIFO");

  // Through a link too (links are followed, then the target must be a regular file).
  std::filesystem::create_symlink(dir / "plain" / "y.safetensors", dir / "link.safetensors");
  ExpectErrorMentions(
      OpenWithoutWaitingFor(dir / "plain" / "y.safetensors", dir / "link.safetensors"),
      "link.safetensors", "is a FIFO");
}

// Links are followed wherever they point (the Hugging Face cache links a snapshot's files to
// ../../blobs/): only the target's type matters.
TEST(Checkpoint, FollowsLinksOutOfTheDirectory) {
  ScratchDir dir;
  std::filesystem::create_directories(dir / "blobs");
  std::filesystem::create_directories(dir / "snapshot");
  WriteFileWith(dir / "blobs" / "0123", {"a"});
  std::filesystem::create_symlink("../blobs/0123", dir / "snapshot" / "model.safetensors");
  auto checkpoint = Checkpoint::Open(dir / "snapshot");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ(checkpoint->names(), std::vector<std::string>{"a"});
}

}  // namespace
}  // namespace weightsync
