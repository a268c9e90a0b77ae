#include "http/curl_errors.h"

#include <curl/curl.h>
#include <doctest/doctest.h>

#include "core/log.h"

namespace lfh {

TEST_CASE("certificate problems are configuration errors that say why") {
  Status status = curl_transport_status(CURLE_PEER_FAILED_VERIFICATION,
                                        "SSL certificate problem: self-signed certificate\n",
                                        "https://langfuse.internal/api/public/health");
  CHECK(status.kind() == ErrorKind::kConfig);
  CHECK(status.message().find("certificate rejected") != std::string::npos);
  CHECK(status.message().find("self-signed certificate") != std::string::npos);
  CHECK(status.message().find("https://langfuse.internal/api/public/health") != std::string::npos);
  CHECK(status.message().find('\n') == std::string::npos);

  CHECK(curl_transport_status(CURLE_SSL_CACERT_BADFILE, "", "https://x/").kind() ==
        ErrorKind::kConfig);
  CHECK(curl_transport_status(CURLE_SSL_CERTPROBLEM, "", "https://x/").kind() ==
        ErrorKind::kConfig);
}

TEST_CASE("transient transport failures are retryable") {
  for (CURLcode code : {CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_OPERATION_TIMEDOUT,
                        CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING,
                        CURLE_SSL_CONNECT_ERROR, CURLE_WEIRD_SERVER_REPLY}) {
    CAPTURE(code);
    CHECK(curl_transport_status(code, "", "http://127.0.0.1:1/").kind() == ErrorKind::kRetryable);
  }
  Status truncated = curl_transport_status(CURLE_PARTIAL_FILE, "", "http://h/x");
  CHECK(truncated.message().find("truncated") != std::string::npos);
  // No detail from libcurl: its generic text for the code is used.
  CHECK(truncated.message().find(curl_easy_strerror(CURLE_PARTIAL_FILE)) != std::string::npos);
}

TEST_CASE("other kinds: URL problems, cancellation, size") {
  CHECK(curl_transport_status(CURLE_URL_MALFORMAT, "", "x").kind() == ErrorKind::kConfig);
  CHECK(curl_transport_status(CURLE_UNSUPPORTED_PROTOCOL, "", "x").kind() == ErrorKind::kConfig);
  CHECK(curl_transport_status(CURLE_ABORTED_BY_CALLBACK, "", "x").kind() == ErrorKind::kCancelled);
  CHECK(curl_transport_status(CURLE_FILESIZE_EXCEEDED, "", "x").kind() == ErrorKind::kTooLarge);
  CHECK(curl_transport_status(CURLE_OUT_OF_MEMORY, "", "x").kind() == ErrorKind::kFatal);
}

TEST_CASE("a registered secret never survives into a transport message") {
  log::add_secret("sk-lf-curl-errors-canary");
  Status status = curl_transport_status(CURLE_COULDNT_CONNECT,
                                        "Failed to connect: sk-lf-curl-errors-canary", "http://h/");
  CHECK(status.message().find("sk-lf-curl-errors-canary") == std::string::npos);
}

TEST_CASE("transport failures say whether retrying soon can help") {
  auto failure = [](CURLcode code) {
    return transport_failure(curl_transport_status(code, "", "http://127.0.0.1:1/"));
  };
  CHECK(failure(CURLE_COULDNT_RESOLVE_HOST) == TransportFailure::kUnresolved);
  CHECK(failure(CURLE_COULDNT_CONNECT) == TransportFailure::kRefused);
  CHECK(failure(CURLE_SSL_CONNECT_ERROR) == TransportFailure::kTlsHandshake);
  CHECK(failure(CURLE_OPERATION_TIMEDOUT) == TransportFailure::kTimeout);
  CHECK(failure(CURLE_RECV_ERROR) == TransportFailure::kOther);
  CHECK(transport_failure_is_permanent(TransportFailure::kUnresolved));
  CHECK(transport_failure_is_permanent(TransportFailure::kTlsHandshake));
  CHECK_FALSE(transport_failure_is_permanent(TransportFailure::kRefused));
  CHECK_FALSE(transport_failure_is_permanent(TransportFailure::kTimeout));
  // An HTTP answer carries its status as detail: never a transport failure.
  CHECK(transport_failure(Status::Error(ErrorKind::kRetryable, "HTTP 503").with_detail(503)) ==
        TransportFailure::kNone);
  CHECK(transport_failure(Status::Ok()) == TransportFailure::kNone);
}

}  // namespace lfh
