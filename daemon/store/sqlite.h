// Thin RAII layer over the SQLite C API. No SQL text lives here: statements are written in
// checkpoint_store.cc (the sync side) and dataset_reader.cc (the export side).
//
// Errors are Status values: SQLITE_FULL / SQLITE_IOERR / SQLITE_READONLY -> kIo, SQLITE_CORRUPT /
// SQLITE_NOTADB -> kCorrupt, anything else -> kFatal. A Db is used by one thread at a time (the
// caller serializes); open a second Db for concurrent readers (WAL lets them read while one
// writer writes).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace lfh::sql {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

class Stmt;

class Db {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  /// Opens (creating when kReadWrite) the file, sets busy_timeout, foreign keys, and for
  /// kReadWrite: WAL journal and synchronous=NORMAL.
  static Result<Db> open(const std::string& path, Mode mode, int busy_timeout_ms = 5000);

  /// Runs one or more statements without results (migrations, PRAGMAs).
  Status exec(std::string_view sql);
  /// Prepares one statement. kFatal with SQLite's message when the SQL is wrong.
  Result<Stmt> prepare(std::string_view sql);

  sqlite3* handle() const { return db_.get(); }
  const std::string& path() const { return path_; }
  int64_t changes() const { return sqlite3_changes64(db_.get()); }

  /// Maps an SQLite result code to a Status with context ("what: sqlite message").
  Status error(int rc, std::string_view what) const;

 private:
  std::unique_ptr<sqlite3, DbCloser> db_;
  std::string path_;
};

/// A prepared statement. Bind by name (":name"), step, read columns by index.
class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3_stmt* s, Db* db) : stmt_(s), db_(db) {}

  Stmt& bind(const char* name, std::string_view v);
  Stmt& bind(const char* name, const std::string& v) { return bind(name, std::string_view(v)); }
  Stmt& bind(const char* name, const char* v) { return bind(name, std::string_view(v)); }
  Stmt& bind(const char* name, int64_t v);
  Stmt& bind(const char* name, int v) { return bind(name, static_cast<int64_t>(v)); }
  Stmt& bind(const char* name, double v);
  Stmt& bind(const char* name, bool v) { return bind(name, static_cast<int64_t>(v ? 1 : 0)); }
  Stmt& bind_null(const char* name);
  template <typename T>
  Stmt& bind(const char* name, const std::optional<T>& v) {
    return v ? bind(name, *v) : bind_null(name);
  }

  /// Advances: true with a row, false when done; an error Status otherwise.
  Result<bool> step();
  /// Runs to completion, ignoring rows.
  Status run();
  /// Resets and clears bindings so the statement can be reused.
  void reset();

  bool is_null(int col) const;
  std::string text(int col) const;
  std::optional<std::string> opt_text(int col) const;
  std::string_view text_view(int col) const;  // valid until the next step/reset
  int64_t int64(int col) const;
  double real(int col) const;
  std::optional<double> opt_real(int col) const;

 private:
  int index(const char* name) const;
  std::unique_ptr<sqlite3_stmt, StmtFinalizer> stmt_;
  Db* db_ = nullptr;
  Status bind_error_;  // first binding error, reported by step()/run()
};

/// BEGIN IMMEDIATE on construction (begin() reports failure); ROLLBACK in the destructor unless
/// commit() succeeded. One at a time per Db.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status begin();
  Status commit();

 private:
  Db& db_;
  bool active_ = false;
};

}  // namespace lfh::sql
