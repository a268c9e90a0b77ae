// A scripted HttpClient for unit tests.
//
// Responses are scripted per route: a URL path (exact, e.g. "/api/public/v3/scores") and
// optionally a substring the query must contain. Each route has a FIFO of responses (or Statuses)
// consumed one per request, then an optional default served forever, then an optional handler
// that computes the answer from the request. Routes with a query substring are tried before
// routes without one, each group in the order the routes were first scripted; the first route
// that can answer answers. A request no route answers gets a 404 with {"message":"not found"}.
//
// Every request is recorded (URL, path, query, Basic auth user, whether a password was set; the
// password itself is never kept). Thread-safe: tests may call it from several threads.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http/http_client.h"

namespace lfh::testing {

class FakeHttpClient final : public HttpClient {
 public:
  struct Recorded {
    std::string url;
    std::string path;   // "/api/public/v3/scores"
    std::string query;  // "limit=100&cursor=..." (still encoded), "" when none
    std::string basic_user;
    bool has_password = false;
    std::string endpoint;
    std::size_t max_body_bytes = 0;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  using Handler = std::function<Result<HttpResponse>(const HttpRequest&)>;

  /// A response with a JSON (or any) body and lower-cased header names.
  static HttpResponse response(long status, std::string body,
                               std::map<std::string, std::string> headers = {});

  /// Queues an answer (a response, or a Status for a transport failure) for the route.
  void push(const std::string& path, Result<HttpResponse> answer,
            const std::string& query_contains = "");
  /// Shorthand for push(path, response(status, body)).
  void push(const std::string& path, long status, std::string body,
            const std::string& query_contains = "");
  /// The answer once the route's queue is empty.
  void set_default(const std::string& path, Result<HttpResponse> answer,
                   const std::string& query_contains = "");
  /// Computes answers once the route's queue is empty and it has no default.
  void set_handler(const std::string& path, Handler handler,
                   const std::string& query_contains = "");

  Result<HttpResponse> get(const HttpRequest& request, std::stop_token stop) override;

  std::vector<Recorded> requests() const;
  /// Number of requests whose path equals `path` ("" = all).
  std::size_t count(const std::string& path = "") const;
  /// Answers still queued on all routes.
  std::size_t pending() const;

  /// Splits an absolute URL into path and query ("http://h:1/a/b?x=1#f" -> "/a/b", "x=1").
  static std::pair<std::string, std::string> split_url(const std::string& url);
  /// The value of a query parameter, percent-decoded; nullopt when absent.
  static std::optional<std::string> query_param(const std::string& query, const std::string& name);

 private:
  struct Route {
    std::string path;
    std::string query_contains;
    std::vector<Result<HttpResponse>> queue;  // consumed from the front
    std::size_t next = 0;
    std::optional<Result<HttpResponse>> fallback;
    Handler handler;
  };
  Route& route(const std::string& path, const std::string& query_contains);

  mutable std::mutex mu_;
  std::vector<Route> routes_;
  std::vector<Recorded> recorded_;
};

}  // namespace lfh::testing
