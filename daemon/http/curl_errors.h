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
/// detail() is -curl_code (negative, so it is never mistaken for an HTTP status); see
/// transport_failure(). Every message passes through log::redact, so a registered secret can
/// never leak through it.
[[nodiscard]] Status curl_transport_status(int curl_code, std::string_view curl_detail,
                                           std::string_view url);

/// Why the server could not be talked to at all, for a Status made by curl_transport_status
/// (and passed on with its detail, as the Langfuse client does).
enum class TransportFailure {
  kNone,          // not a transport failure: an HTTP answer, or some other error
  kUnresolved,    // the host name does not resolve
  kRefused,       // nothing listens on the port (or a firewall rejects the connection)
  kTlsHandshake,  // the TLS handshake failed: https to a plain-http port, no common version
  kTimeout,       // connect, total or low-speed timeout: the server accepted and went silent
  kOther,         // any other transfer failure (reset, truncated body, ...)
};

TransportFailure transport_failure(const Status& status);

/// True for failures that a retry within seconds cannot fix (a name that does not resolve, a
/// TLS handshake that fails): commands report them at once instead of retrying. A refused
/// connection is not among them: a server that is restarting refuses for a moment.
bool transport_failure_is_permanent(TransportFailure failure);

}  // namespace lfh
