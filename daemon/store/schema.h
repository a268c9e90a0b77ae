// Schema versioning: PRAGMA application_id marks the file as lfharvest's, PRAGMA user_version is
// the number of the last migration applied (schema/NNNN_name.sql).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "store/sqlite.h"

namespace lfh {

inline constexpr int32_t kApplicationId = 0x4C464856;  // "LFHV"

/// Before a read-write open: refuses (kCorrupt, message naming the file and why) a non-empty
/// file that is not an lfharvest database: another program's SQLite file (its application_id,
/// or tables without ours) or not SQLite at all. Looks through a read-only connection, so such a
/// file stays byte-identical. A missing or empty file, or an empty SQLite database, is fine.
Status refuse_foreign_database(const std::string& path);

/// The schema version this program writes (the highest embedded migration).
int latest_schema_version();

/// Reads user_version; refuses (kCorrupt) a file whose application_id belongs to another program.
Result<int> schema_version(sql::Db& db);

/// Brings the database to latest_schema_version(). Each step runs as BEGIN IMMEDIATE; step;
/// PRAGMA user_version = N; COMMIT, so a crash leaves the file at N-1 or N, never between.
/// A database newer than the program is refused (kCorrupt: exit 74) with a message naming both
/// versions.
Status migrate(sql::Db& db);

}  // namespace lfh
