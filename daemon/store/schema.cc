#include "store/schema.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include "core/log.h"
#include "store/migrations.h"

namespace lfh {
namespace {

Result<int64_t> pragma_int(sql::Db& db, const char* pragma) {
  auto stmt = db.prepare(fmt::format("PRAGMA {}", pragma));
  if (!stmt.ok()) return stmt.status();
  auto row = stmt->step();
  if (!row.ok()) return row.status();
  return *row ? stmt->int64(0) : 0;
}

}  // namespace

Status refuse_foreign_database(const std::string& path) {
  struct stat st {};
  // A missing or empty file becomes a new lfharvest database: nothing to protect.
  if (path.empty() || path == ":memory:" || ::stat(path.c_str(), &st) != 0 || st.st_size == 0) {
    return Status::Ok();
  }
  // Read-only: this look must not change a byte of a file that is not ours.
  auto db = sql::Db::open(path, sql::Db::Mode::kReadOnly);
  if (!db.ok()) return db.status();
  auto app = pragma_int(*db, "application_id");
  if (!app.ok()) {
    if (app.status().kind() == ErrorKind::kCorrupt) {
      return Status::Error(ErrorKind::kCorrupt,
                           fmt::format("{}: not a SQLite database; lfharvest leaves it untouched "
                                       "(point --db at a new file)",
                                       path));
    }
    return app.status();
  }
  if (*app == kApplicationId) return Status::Ok();
  auto version = pragma_int(*db, "user_version");
  if (!version.ok()) return version.status();
  auto objects = db->prepare("SELECT count(*) FROM sqlite_schema");
  if (!objects.ok()) return objects.status();
  auto row = objects->step();
  if (!row.ok()) return row.status();
  const int64_t count = *row ? objects->int64(0) : 0;
  if (*app == 0 && *version == 0 && count == 0) return Status::Ok();
  const std::string whose = *app != 0 ? fmt::format("application_id {:#x}", *app)
                                      : fmt::format(
                                            "{} schema objects, no lfharvest application "
                                            "id",
                                            count);
  return Status::Error(ErrorKind::kCorrupt,
                       fmt::format("{}: not an lfharvest database ({}); lfharvest leaves it "
                                   "untouched (point --db at a new file)",
                                   path, whose));
}

int latest_schema_version() {
  auto all = embedded_migrations();
  return all.empty() ? 0 : all.back().version;
}

Result<int> schema_version(sql::Db& db) {
  auto app = pragma_int(db, "application_id");
  if (!app.ok()) return app.status();
  auto version = pragma_int(db, "user_version");
  if (!version.ok()) return version.status();
  if (*app != 0 && *app != kApplicationId) {
    return Status::Error(
        ErrorKind::kCorrupt,
        fmt::format("{}: not an lfharvest database (application_id {:#x})", db.path(), *app));
  }
  if (*app == 0 && *version != 0) {
    return Status::Error(
        ErrorKind::kCorrupt,
        fmt::format("{}: not an lfharvest database (no application id)", db.path()));
  }
  return static_cast<int>(*version);
}

Status migrate(sql::Db& db) {
  auto current = schema_version(db);
  if (!current.ok()) return current.status();
  const int latest = latest_schema_version();
  if (*current > latest) {
    return Status::Error(
        ErrorKind::kCorrupt,
        fmt::format("{}: database schema version {} is newer than this lfharvest understands "
                    "(version {}); upgrade lfharvest or use another database",
                    db.path(), *current, latest));
  }
  for (const Migration& m : embedded_migrations()) {
    if (m.version <= *current) continue;
    sql::Transaction tx(db);
    if (Status s = tx.begin(); !s.ok()) return s;
    // Re-check inside the write lock: another process may have migrated meanwhile.
    auto again = schema_version(db);
    if (!again.ok()) return again.status();
    if (*again >= m.version) continue;
    if (Status s = db.exec(m.sql); !s.ok()) {
      return Status::Error(s.kind(),
                           fmt::format("migration {:04d}_{}: {}", m.version, m.name, s.message()));
    }
    if (Status s = db.exec(fmt::format("PRAGMA application_id = {}; PRAGMA user_version = {}",
                                       kApplicationId, m.version));
        !s.ok()) {
      return s;
    }
    if (Status s = tx.commit(); !s.ok()) return s;
    log::info("database {} migrated to schema version {} ({})", db.path(), m.version, m.name);
  }
  return Status::Ok();
}

}  // namespace lfh
