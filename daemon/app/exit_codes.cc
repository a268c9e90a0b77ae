#include "app/exit_codes.h"

namespace lfh {

int exit_code_for(const Status& status) {
  switch (status.kind()) {
    case ErrorKind::kOk:
      return kExitOk;
    case ErrorKind::kAuth:
      return kExitNoPerm;
    case ErrorKind::kConfig:
      return kExitConfig;
    case ErrorKind::kIo:
    case ErrorKind::kCorrupt:
      return kExitIoError;
    case ErrorKind::kRetryable:
    case ErrorKind::kRateLimited:
    case ErrorKind::kNotFound:
      return kExitUnavailable;
    case ErrorKind::kTooLarge:
    case ErrorKind::kPermanent:
    case ErrorKind::kCancelled:
    case ErrorKind::kFatal:
      return kExitFailure;
  }
  return kExitFailure;
}

int exit_code_for_signal(int signal_number) {
  return 128 + signal_number;
}

}  // namespace lfh
