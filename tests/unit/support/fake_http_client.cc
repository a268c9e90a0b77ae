#include "support/fake_http_client.h"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace lfh::testing {

HttpResponse FakeHttpClient::response(long status, std::string body,
                                      std::map<std::string, std::string> headers) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  for (auto& [name, value] : headers) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    r.headers[lower] = value;
  }
  return r;
}

FakeHttpClient::Route& FakeHttpClient::route(const std::string& path,
                                             const std::string& query_contains) {
  for (auto& r : routes_) {
    if (r.path == path && r.query_contains == query_contains) return r;
  }
  routes_.push_back(Route{path, query_contains, {}, 0, std::nullopt, nullptr});
  return routes_.back();
}

void FakeHttpClient::push(const std::string& path, Result<HttpResponse> answer,
                          const std::string& query_contains) {
  std::lock_guard lock(mu_);
  route(path, query_contains).queue.push_back(std::move(answer));
}

void FakeHttpClient::push(const std::string& path, long status, std::string body,
                          const std::string& query_contains) {
  push(path, response(status, std::move(body)), query_contains);
}

void FakeHttpClient::set_default(const std::string& path, Result<HttpResponse> answer,
                                 const std::string& query_contains) {
  std::lock_guard lock(mu_);
  route(path, query_contains).fallback = std::move(answer);
}

void FakeHttpClient::set_handler(const std::string& path, Handler handler,
                                 const std::string& query_contains) {
  std::lock_guard lock(mu_);
  route(path, query_contains).handler = std::move(handler);
}

Result<HttpResponse> FakeHttpClient::get(const HttpRequest& request, std::stop_token stop) {
  if (stop.stop_requested()) return Status::Error(ErrorKind::kCancelled, "stop requested");
  auto [path, query] = split_url(request.url);
  Handler handler;
  {
    std::lock_guard lock(mu_);
    recorded_.push_back(Recorded{request.url, path, query, request.basic_user,
                                 !request.basic_password.empty(), request.endpoint,
                                 request.max_body_bytes, request.headers});
    std::vector<Route*> candidates;
    for (bool with_query : {true, false}) {
      for (auto& r : routes_) {
        if (r.path != path || r.query_contains.empty() != !with_query) continue;
        if (with_query && query.find(r.query_contains) == std::string::npos) continue;
        candidates.push_back(&r);
      }
    }
    for (Route* r : candidates) {
      if (r->next < r->queue.size()) return r->queue[r->next++];
      if (r->fallback) return *r->fallback;
      if (r->handler) {
        handler = r->handler;
        break;
      }
    }
  }
  if (handler) return handler(request);  // outside the lock: a handler may use the fake
  return response(404, R"({"message":"not found"})");
}

std::vector<FakeHttpClient::Recorded> FakeHttpClient::requests() const {
  std::lock_guard lock(mu_);
  return recorded_;
}

std::size_t FakeHttpClient::count(const std::string& path) const {
  std::lock_guard lock(mu_);
  return static_cast<std::size_t>(
      std::count_if(recorded_.begin(), recorded_.end(),
                    [&](const Recorded& r) { return path.empty() || r.path == path; }));
}

std::size_t FakeHttpClient::pending() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& r : routes_) n += r.queue.size() - r.next;
  return n;
}

std::pair<std::string, std::string> FakeHttpClient::split_url(const std::string& url) {
  std::string rest = url;
  if (auto fragment = rest.find('#'); fragment != std::string::npos) rest.resize(fragment);
  if (auto scheme = rest.find("://"); scheme != std::string::npos) {
    auto path_start = rest.find('/', scheme + 3);
    auto query_start = rest.find('?', scheme + 3);
    if (path_start == std::string::npos || path_start > query_start) {
      rest = "/" + (query_start == std::string::npos ? "" : rest.substr(query_start));
    } else {
      rest = rest.substr(path_start);
    }
  }
  auto question = rest.find('?');
  if (question == std::string::npos) return {rest, ""};
  return {rest.substr(0, question), rest.substr(question + 1)};
}

std::optional<std::string> FakeHttpClient::query_param(const std::string& query,
                                                       const std::string& name) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  auto decode = [&](std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
        out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
        i += 2;
      } else if (text[i] == '+') {
        out.push_back(' ');
      } else {
        out.push_back(text[i]);
      }
    }
    return out;
  };
  std::size_t start = 0;
  while (start <= query.size()) {
    auto end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    std::string_view pair(query.data() + start, end - start);
    auto eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (decode(key) == name) {
      return eq == std::string_view::npos ? std::string() : decode(pair.substr(eq + 1));
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace lfh::testing
