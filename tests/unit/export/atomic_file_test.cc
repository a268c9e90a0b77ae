#include "export/atomic_file.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "export/export_fixture.h"
#include "export/sha256.h"

namespace lfh {
namespace {

using testing::read_file;
using testing::TempDir;

std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

void touch(const std::string& path) {
  std::ofstream(path) << "partial";
}

}  // namespace

TEST_CASE("sha256 of known vectors, streamed or in one piece") {
  CHECK(Sha256::of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 streamed;
  streamed.update("a");
  streamed.update("bc");
  CHECK(streamed.hex_digest() ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // The hasher starts over after a digest.
  streamed.update("abc");
  CHECK(streamed.hex_digest() == Sha256::of("abc"));
}

TEST_CASE("an atomic file appears whole on commit, mode 0640 under umask 022") {
  ScopedUmask umask(022);
  TempDir dir;
  const std::string target = dir.file("data.jsonl");
  auto file = AtomicFile::create(target);
  REQUIRE(file.ok());
  CHECK(file->temp_path().find("/.data.jsonl.tmp.") != std::string::npos);
  REQUIRE(file->write("line 1\n").ok());
  REQUIRE(file->write(std::string(3 << 20, 'x')).ok());  // bigger than the buffer
  REQUIRE(file->write("\n").ok());
  CHECK_FALSE(std::filesystem::exists(target));  // nothing visible before commit
  CHECK(mode_of(file->temp_path()) == 0640);
  REQUIRE(file->commit().ok());
  CHECK(read_file(target) == "line 1\n" + std::string(3 << 20, 'x') + "\n");
  CHECK(mode_of(target) == 0640);
  CHECK(names_in(dir.path()) == std::vector<std::string>{"data.jsonl"});
}

TEST_CASE("a stricter umask removes more permissions") {
  ScopedUmask umask(077);
  TempDir dir;
  REQUIRE(write_file_atomically(dir.file("f"), "x").ok());
  CHECK(mode_of(dir.file("f")) == 0600);
}

TEST_CASE("an abandoned atomic file leaves the old target and no temp file") {
  TempDir dir;
  const std::string target = dir.file("data.json");
  REQUIRE(write_file_atomically(target, "old").ok());
  {
    auto file = AtomicFile::create(target);
    REQUIRE(file.ok());
    REQUIRE(file->write("new but unfinished").ok());
  }
  CHECK(read_file(target) == "old");
  CHECK(names_in(dir.path()) == std::vector<std::string>{"data.json"});
}

TEST_CASE("a missing folder is an I/O error naming the path") {
  TempDir dir;
  auto file = AtomicFile::create(dir.file("no/such/folder/out.jsonl"));
  REQUIRE_FALSE(file.ok());
  CHECK(file.status().kind() == ErrorKind::kIo);
  CHECK(file.status().message().find("out.jsonl") != std::string::npos);
  CHECK(AtomicFile::create(dir.file("folder/")).status().kind() == ErrorKind::kConfig);
}

TEST_CASE("stale temp files of dead processes are removed; live ones and others kept") {
  TempDir dir;
  const std::string target = dir.file("out.jsonl");
  // Far above any pid_max: that process cannot exist.
  touch(dir.file(".out.jsonl.tmp.99999999.0123abcd"));
  touch(dir.file(".out.jsonl.tmp.99999998.ffff"));
  touch(dir.file(".out.jsonl.tmp.1.keep"));                                   // pid 1 always runs
  touch(dir.file(".out.jsonl.tmp." + std::to_string(::getpid()) + ".mine"));  // this process
  touch(dir.file(".other.jsonl.tmp.99999999.x"));                             // another target
  touch(dir.file(".out.jsonl.tmp.notapid.x"));                                // not our pattern
  touch(dir.file("out.jsonl"));
  auto removed = remove_stale_temp_files(target);
  REQUIRE(removed.ok());
  CHECK(*removed == 2);
  std::vector<std::string> kept{".other.jsonl.tmp.99999999.x", ".out.jsonl.tmp.1.keep",
                                ".out.jsonl.tmp." + std::to_string(::getpid()) + ".mine",
                                ".out.jsonl.tmp.notapid.x", "out.jsonl"};
  std::sort(kept.begin(), kept.end());
  CHECK(names_in(dir.path()) == kept);
  CHECK(remove_stale_temp_files(dir.file("missing-folder/out")).ok());
}

}  // namespace lfh
