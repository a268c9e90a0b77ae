#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include "core/clock.h"
#include "store/checkpoint_store.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "support/temp_dir.h"

namespace lfh {
namespace {

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void make_foreign(const std::string& path, const char* sql) {
  auto db = sql::Db::open(path, sql::Db::Mode::kReadWrite);
  REQUIRE(db.ok());
  // Rollback journal, as most programs use: lfharvest's WAL switch would rewrite the header.
  REQUIRE(db->exec("PRAGMA journal_mode = DELETE").ok());
  REQUIRE(db->exec(sql).ok());
}

}  // namespace

TEST_CASE("another program's SQLite file is refused and left byte-identical") {
  testing::TempDir dir;
  FakeClock clock;
  const std::string plain = dir.file("notes.db");
  make_foreign(plain,
               "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);"
               "INSERT INTO notes (text) VALUES ('one'), ('two');");
  const std::string stamped = dir.file("stamped.db");
  make_foreign(stamped, "PRAGMA application_id = 77; CREATE TABLE t (x);");
  for (const std::string& path : {plain, stamped}) {
    CAPTURE(path);
    const std::string before = contents(path);
    auto store = CheckpointStore::open(path, clock);
    REQUIRE_FALSE(store.ok());
    CHECK(store.status().kind() == ErrorKind::kCorrupt);
    CHECK(store.status().message().find("not an lfharvest database") != std::string::npos);
    CHECK(store.status().message().find(path) != std::string::npos);
    CHECK(contents(path) == before);
  }
}

TEST_CASE("a file that is not SQLite is refused untouched; empty and missing files are fine") {
  testing::TempDir dir;
  FakeClock clock;
  const std::string text = dir.file("text.db");
  {
    std::ofstream out(text, std::ios::binary);
    for (int i = 0; i < 100; ++i) out << "not a database\n";
  }
  const std::string before = contents(text);
  auto refused = CheckpointStore::open(text, clock);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().kind() == ErrorKind::kCorrupt);
  CHECK(contents(text) == before);

  const std::string empty = dir.file("empty.db");
  { std::ofstream out(empty); }
  CHECK(refuse_foreign_database(empty).ok());
  CHECK(refuse_foreign_database(dir.file("missing.db")).ok());
  auto created = CheckpointStore::open(empty, clock);
  REQUIRE(created.ok());
  // Our own database, reopened: fine.
  created = Status::Error(ErrorKind::kFatal, "closed");
  CHECK(refuse_foreign_database(empty).ok());
  CHECK(CheckpointStore::open(empty, clock).ok());
}

}  // namespace lfh
