// libcurl result codes -> the Status kinds of the HttpClient contract.
#pragma once

#include <string_view>

#include "core/status.h"

namespace lfh {

/// The Status for a transfer that failed with libcurl result `curl_code` (a CURLcode, passed as
/// int to keep libcurl out of this header). `curl_detail` is libcurl's error buffer (empty: the
/// generic text for the code is used); `url` must be free of credentials.
///   connect/resolve failures, timeouts, low-speed aborts, send/recv errors, resets, truncated
///   bodies, empty replies, TLS handshake failures       -> kRetryable
///   certificate rejected, unusable CA file or client cert -> kConfig (says why)
///   malformed URL, unsupported protocol                  -> kConfig
///   aborted by callback                                  -> kCancelled
///   file size exceeded                                   -> kTooLarge
///   out of memory                                        -> kFatal
///   anything else                                        -> kRetryable (bounded by the retry
///   policy)
/// Every message passes through log::redact, so a registered secret can never leak through it.
[[nodiscard]] Status curl_transport_status(int curl_code, std::string_view curl_detail,
                                           std::string_view url);

}  // namespace lfh
