// Errors as values across module boundaries.
//
// A Status is either OK or carries an ErrorKind that tells the caller what to do next (retry,
// give up on this record, stop the process) and a human-readable message with context. Messages
// never contain secrets: code that builds them must not interpolate credentials.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace lfh {

enum class ErrorKind {
  kOk = 0,
  kRetryable,    // transient: 5xx, 524, timeouts, resets, truncated or malformed bodies
  kRateLimited,  // 429 (or 503 with Retry-After): retry no earlier than Status::retry_after_ms
  kPermanent,    // 400 and friends: retrying the same request cannot help
  kAuth,         // 401/403: the keys are wrong; stop the process
  kNotFound,     // 404: endpoint or object missing (API generation fallback uses this)
  kTooLarge,     // response exceeded the configured size cap
  kCorrupt,      // data that cannot be parsed or violates an invariant
  kConfig,       // invalid configuration or secret
  kIo,           // local file or database I/O failure (disk full, permission, ...)
  kCancelled,    // stop requested (signal); not an error of the operation itself
  kFatal,        // anything else that must stop the process
};

/// Short stable name of a kind ("retryable", "too_large", ...), used in logs, status and the DB.
const char* error_kind_name(ErrorKind kind);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(ErrorKind kind, std::string message) {
    return Status(kind, std::move(message));
  }

  bool ok() const { return kind_ == ErrorKind::kOk; }
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }

  /// For kRateLimited / kRetryable: the server asked us to wait at least this long.
  std::optional<long long> retry_after_ms() const { return retry_after_ms_; }
  Status& with_retry_after_ms(long long ms) {
    retry_after_ms_ = ms;
    return *this;
  }
  /// Extra detail for some kinds (kTooLarge: the size in bytes seen so far; HTTP: the status).
  long long detail() const { return detail_; }
  Status& with_detail(long long d) {
    detail_ = d;
    return *this;
  }

  /// "too_large: response exceeded 67108864 bytes"
  std::string to_string() const;

 private:
  Status(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {}
  ErrorKind kind_ = ErrorKind::kOk;
  std::string message_;
  std::optional<long long> retry_after_ms_;
  long long detail_ = 0;
};

/// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be OK

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace lfh
