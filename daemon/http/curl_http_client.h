// The production HttpClient: libcurl, TLS always verified, credentials never leaving their origin.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>

#include "core/clock.h"
#include "http/http_client.h"

namespace lfh {

struct CurlHttpClientOptions {
  Millis connect_timeout = std::chrono::seconds(10);
  /// Whole call, all redirect hops together.
  Millis total_timeout = std::chrono::seconds(120);
  /// Abort when fewer than low_speed_limit bytes/s arrive for low_speed_time (stalled bodies,
  /// servers that accept and never answer).
  long low_speed_limit_bytes_per_s = 1024;
  std::chrono::seconds low_speed_time = std::chrono::seconds(60);
  /// Body cap when HttpRequest::max_body_bytes is 0.
  std::size_t max_body_bytes = std::size_t{64} << 20;
  /// PEM bundle of trusted CAs; empty = the system store. Verification cannot be turned off.
  std::string ca_file;
  /// Empty = "lfharvest/<version>".
  std::string user_agent;
  /// Redirect hops followed before giving up (kConfig).
  int max_redirects = 5;
};

/// GET over libcurl.
///
/// - TLS peer and host verification are always on; a rejected certificate is kConfig with the
///   reason. Only http and https are spoken.
/// - Basic credentials go through libcurl's user/password options, never into a URL or a message.
///   Redirects (301/302/303/307/308) are followed by this class, up to max_redirects hops:
///   credentials (and any Authorization/Cookie request header) are dropped for good as soon as a
///   hop leaves the original scheme+host+port, and https -> http is refused (kConfig).
/// - The body cap is enforced while the body arrives (a Content-Length over the cap is refused
///   before any body byte): kTooLarge with detail = bytes announced or received so far.
/// - A stop request aborts the transfer at once (kCancelled): the transfer runs on a libcurl multi
///   handle that a stop callback wakes up, and the progress callback checks the token as well.
/// - Response header names are lower-cased; the headers returned are those of the final hop.
///
/// Handles: a pool of idle (multi, easy) pairs; each call takes one (or creates one), so calls
/// never share a handle, and returns it afterwards so connections, DNS and TLS sessions are reused.
/// The pool grows to the peak number of concurrent calls. Thread-safe.
class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(CurlHttpClientOptions options = {});
  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  Result<HttpResponse> get(const HttpRequest& request, std::stop_token stop) override;

  const CurlHttpClientOptions& options() const { return options_; }

 private:
  struct Session;  // one multi handle + one easy handle
  struct HopResult;

  std::unique_ptr<Session> checkout();
  void checkin(std::unique_ptr<Session> session);
  Result<HopResult> perform_hop(Session& session, const HttpRequest& request,
                                const std::string& url, bool send_credentials, std::size_t max_body,
                                Millis time_left, std::stop_token stop);

  const CurlHttpClientOptions options_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Session>> idle_;
};

}  // namespace lfh
