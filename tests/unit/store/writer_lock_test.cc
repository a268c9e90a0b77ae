#include "store/writer_lock.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "support/temp_dir.h"

namespace lfh {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("the writer lock is exclusive, names its holder and is released on destruction") {
  testing::TempDir dir;
  const std::string db = dir.file("lfharvest.db");
  CHECK(WriterLock::path_for(db) == db + ".lock");

  auto first = WriterLock::acquire(db);
  REQUIRE(first.ok());
  CHECK(read_all(db + ".lock") == std::to_string(::getpid()) + "\n");

  // flock belongs to the open file description, so a second acquire in this same process is
  // refused exactly as another process would be.
  auto second = WriterLock::acquire(db);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().kind() == ErrorKind::kRetryable);
  CHECK(second.status().detail() == ::getpid());
  CHECK(second.status().message().find("PID " + std::to_string(::getpid())) != std::string::npos);
  CHECK(second.status().message().find(db + ".lock") != std::string::npos);
  // The refusal left the holder's PID in place.
  CHECK(read_all(db + ".lock") == std::to_string(::getpid()) + "\n");

  // Another database is another lock.
  auto other = WriterLock::acquire(dir.file("other.db"));
  CHECK(other.ok());

  // Moving keeps the lock held; destroying the last owner releases it.
  {
    WriterLock moved = std::move(first).value();
    CHECK_FALSE(WriterLock::acquire(db).ok());
  }
  auto again = WriterLock::acquire(db);
  CHECK(again.ok());
}

TEST_CASE("a lock file left by a dead holder is taken over, its stale PID replaced") {
  testing::TempDir dir;
  const std::string db = dir.file("lfharvest.db");
  {
    std::ofstream stale(db + ".lock");
    stale << "999999999\nleftover text that is longer than a PID\n";
  }
  auto lock = WriterLock::acquire(db);
  REQUIRE(lock.ok());
  CHECK(read_all(db + ".lock") == std::to_string(::getpid()) + "\n");
}

TEST_CASE("a lock file that cannot be created is an I/O error naming it") {
  testing::TempDir dir;
  const std::string db = dir.file("missing-dir/lfharvest.db");
  auto lock = WriterLock::acquire(db);
  REQUIRE_FALSE(lock.ok());
  CHECK(lock.status().kind() == ErrorKind::kIo);
  CHECK(lock.status().message().find(db + ".lock") != std::string::npos);
}

}  // namespace lfh
