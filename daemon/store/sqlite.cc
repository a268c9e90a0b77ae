#include "store/sqlite.h"

#include <fmt/format.h>

namespace lfh::sql {

Result<Db> Db::open(const std::string& path, Mode mode, int busy_timeout_ms) {
  int flags = SQLITE_OPEN_NOMUTEX;
  flags |=
      mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Db db;
  db.db_.reset(raw);
  db.path_ = path;
  if (rc != SQLITE_OK) {
    Status s = db.error(rc, "open");
    return raw ? s : Status::Error(ErrorKind::kIo, "database " + path + ": open: out of memory");
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  if (Status s = db.exec("PRAGMA foreign_keys = ON"); !s.ok()) return s;
  if (mode == Mode::kReadWrite) {
    if (Status s = db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL"); !s.ok()) {
      return s;
    }
  }
  return db;
}

Status Db::error(int rc, std::string_view what) const {
  const char* msg = db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
  std::string text = fmt::format("database {}: {}: {} ({})", path_, what, msg, sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOLFS:
      return Status::Error(ErrorKind::kIo, std::move(text)).with_detail(rc);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Error(ErrorKind::kCorrupt, std::move(text)).with_detail(rc);
    default:
      return Status::Error(ErrorKind::kFatal, std::move(text)).with_detail(rc);
  }
}

Status Db::exec(std::string_view sql) {
  std::string owned(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_.get(), owned.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);  // errmsg() below carries the same text
  if (rc != SQLITE_OK) return error(rc, "sql");
  return Status::Ok();
}

Result<Stmt> Db::prepare(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return error(rc, fmt::format("prepare [{}]", sql.substr(0, 80)));
  }
  return Stmt(raw, this);
}

int Stmt::index(const char* name) const {
  return sqlite3_bind_parameter_index(stmt_.get(), name);
}

namespace {
Status bind_status(int rc, const char* name) {
  if (rc == SQLITE_OK) return Status::Ok();
  return Status::Error(ErrorKind::kFatal, fmt::format("bind {}: {}", name, sqlite3_errstr(rc)));
}
}  // namespace

Stmt& Stmt::bind(const char* name, std::string_view v) {
  int i = index(name);
  int rc = i == 0 ? SQLITE_RANGE
                  : sqlite3_bind_text64(stmt_.get(), i, v.data(), v.size(), SQLITE_TRANSIENT,
                                        SQLITE_UTF8);
  if (bind_error_.ok()) bind_error_ = bind_status(rc, name);
  return *this;
}

Stmt& Stmt::bind(const char* name, int64_t v) {
  int i = index(name);
  int rc = i == 0 ? SQLITE_RANGE : sqlite3_bind_int64(stmt_.get(), i, v);
  if (bind_error_.ok()) bind_error_ = bind_status(rc, name);
  return *this;
}

Stmt& Stmt::bind(const char* name, double v) {
  int i = index(name);
  int rc = i == 0 ? SQLITE_RANGE : sqlite3_bind_double(stmt_.get(), i, v);
  if (bind_error_.ok()) bind_error_ = bind_status(rc, name);
  return *this;
}

Stmt& Stmt::bind_null(const char* name) {
  int i = index(name);
  int rc = i == 0 ? SQLITE_RANGE : sqlite3_bind_null(stmt_.get(), i);
  if (bind_error_.ok()) bind_error_ = bind_status(rc, name);
  return *this;
}

Result<bool> Stmt::step() {
  if (!bind_error_.ok()) return bind_error_;
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->error(rc, "step");
}

Status Stmt::run() {
  for (;;) {
    auto r = step();
    if (!r.ok()) {
      reset();
      return r.status();
    }
    if (!*r) break;
  }
  reset();
  return Status::Ok();
}

void Stmt::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
  bind_error_ = Status::Ok();
}

bool Stmt::is_null(int col) const {
  return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL;
}

std::string_view Stmt::text_view(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), col));
  if (!p) return {};
  return {p, static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col))};
}

std::string Stmt::text(int col) const {
  return std::string(text_view(col));
}

std::optional<std::string> Stmt::opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}

int64_t Stmt::int64(int col) const {
  return sqlite3_column_int64(stmt_.get(), col);
}
double Stmt::real(int col) const {
  return sqlite3_column_double(stmt_.get(), col);
}
std::optional<double> Stmt::opt_real(int col) const {
  if (is_null(col)) return std::nullopt;
  return real(col);
}

Transaction::~Transaction() {
  if (active_) {
    // Rollback cannot usefully fail here; SQLite already rolled back on some errors.
    (void)db_.exec("ROLLBACK");
  }
}

Status Transaction::begin() {
  Status s = db_.exec("BEGIN IMMEDIATE");
  active_ = s.ok();
  return s;
}

Status Transaction::commit() {
  Status s = db_.exec("COMMIT");
  if (s.ok()) active_ = false;
  return s;
}

}  // namespace lfh::sql
