#include "http/curl_errors.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include "core/log.h"

namespace lfh {
namespace {

struct Classified {
  ErrorKind kind;
  const char* what;  // short explanation for an operator
};

Classified classify(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return {ErrorKind::kRetryable, "could not resolve host"};
    case CURLE_COULDNT_CONNECT:
      return {ErrorKind::kRetryable, "connect failed"};
    case CURLE_OPERATION_TIMEDOUT:
      return {ErrorKind::kRetryable, "timed out or too slow (low-speed limit)"};
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return {ErrorKind::kRetryable, "connection broken"};
    case CURLE_PARTIAL_FILE:
      return {ErrorKind::kRetryable, "truncated response body"};
    case CURLE_GOT_NOTHING:
      return {ErrorKind::kRetryable, "server closed the connection without a reply"};
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_BAD_CONTENT_ENCODING:
      return {ErrorKind::kRetryable, "malformed response"};
    case CURLE_SSL_CONNECT_ERROR:
      return {ErrorKind::kRetryable,
              "TLS handshake failed (an https URL for a plain-http server, or no TLS version "
              "in common)"};

    case CURLE_PEER_FAILED_VERIFICATION:
      return {ErrorKind::kConfig,
              "TLS certificate rejected (set ca_file if the server uses a private CA)"};
    case CURLE_SSL_CACERT_BADFILE:
      return {ErrorKind::kConfig, "TLS CA file could not be loaded"};
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return {ErrorKind::kConfig, "TLS certificate rejected"};
    case CURLE_UNSUPPORTED_PROTOCOL:
      return {ErrorKind::kConfig, "unsupported protocol (only http and https)"};
    case CURLE_URL_MALFORMAT:
      return {ErrorKind::kConfig, "malformed URL"};

    case CURLE_ABORTED_BY_CALLBACK:
      return {ErrorKind::kCancelled, "stop requested"};
    case CURLE_FILESIZE_EXCEEDED:
      return {ErrorKind::kTooLarge, "response exceeded the size cap"};
    case CURLE_OUT_OF_MEMORY:
      return {ErrorKind::kFatal, "out of memory"};
    default:
      return {ErrorKind::kRetryable, "transfer failed"};
  }
}

}  // namespace

Status curl_transport_status(int curl_code, std::string_view curl_detail, std::string_view url) {
  const auto code = static_cast<CURLcode>(curl_code);
  Classified classified = classify(code);
  std::string_view detail = curl_detail.empty() ? curl_easy_strerror(code) : curl_detail;
  // libcurl's buffer often ends with a newline.
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) {
    detail.remove_suffix(1);
  }
  std::string message =
      fmt::format("GET {}: {}: {} (curl error {})", url, classified.what, detail, curl_code);
  return Status::Error(classified.kind, log::redact(std::move(message))).with_detail(-curl_code);
}

TransportFailure transport_failure(const Status& status) {
  if (status.ok() || status.detail() >= 0) return TransportFailure::kNone;
  switch (static_cast<CURLcode>(-status.detail())) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransportFailure::kUnresolved;
    case CURLE_COULDNT_CONNECT:
      return TransportFailure::kRefused;
    case CURLE_SSL_CONNECT_ERROR:
      return TransportFailure::kTlsHandshake;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportFailure::kTimeout;
    default:
      return TransportFailure::kOther;
  }
}

bool transport_failure_is_permanent(TransportFailure failure) {
  // DNS: the resolver has already retried by the time libcurl gives up, and a name that does not
  // resolve is almost always a typo in base_url. TLS: https against a plain-http port ("wrong
  // version number") or no common protocol version fails the same way on every attempt.
  return failure == TransportFailure::kUnresolved || failure == TransportFailure::kTlsHandshake;
}

}  // namespace lfh
