#include "core/status.h"

namespace lfh {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kOk:
      return "ok";
    case ErrorKind::kRetryable:
      return "retryable";
    case ErrorKind::kRateLimited:
      return "rate_limited";
    case ErrorKind::kPermanent:
      return "permanent";
    case ErrorKind::kAuth:
      return "auth";
    case ErrorKind::kNotFound:
      return "not_found";
    case ErrorKind::kTooLarge:
      return "too_large";
    case ErrorKind::kCorrupt:
      return "corrupt";
    case ErrorKind::kConfig:
      return "config";
    case ErrorKind::kIo:
      return "io";
    case ErrorKind::kCancelled:
      return "cancelled";
    case ErrorKind::kFatal:
      return "fatal";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(error_kind_name(kind_)) + ": " + message_;
}

}  // namespace lfh
