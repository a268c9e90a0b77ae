#include "store/schema.h"

#include <fmt/format.h>

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
        ErrorKind::kFatal,
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
