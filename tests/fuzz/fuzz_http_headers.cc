// libFuzzer target: header values the server chooses. The first line is a Retry-After value
// (delay-seconds or one of the three HTTP-date forms); the whole input is a Location to resolve
// against an https and an http URL, and a URL to take the origin of. Checks: a wait is never
// negative nor longer than a day; a redirect target is absolute http(s), never carries
// credentials, never downgrades https to http, and same_origin agrees with http_origin().
// Seeds: corpus/http_headers/.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/redirect_policy.h"
#include "http/retry_after.h"

namespace {

void require(bool condition) {
  if (!condition) __builtin_trap();
}

std::string_view authority(std::string_view url) {
  const auto start = url.find("://");
  if (start == std::string_view::npos) return {};
  url.remove_prefix(start + 3);
  return url.substr(0, url.find_first_of("/?#"));
}

void check_redirect(std::string_view from, std::string_view location) {
  auto target = lfh::resolve_redirect(from, location);
  if (!target.ok()) return;
  const std::string& url = target->url;
  const bool https = url.starts_with("https://");
  require(https || url.starts_with("http://"));
  if (from.starts_with("https://")) require(https);
  require(authority(url).find('@') == std::string_view::npos);
  auto origin = lfh::http_origin(url);
  require(origin.ok());
  auto from_origin = lfh::http_origin(from);
  require(from_origin.ok());
  require(target->same_origin == (*origin == *from_origin));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const lfh::SysTime now{std::chrono::seconds(1'700'000'000)};
  const std::string_view first_line = text.substr(0, text.find('\n'));
  if (auto wait = lfh::parse_retry_after(first_line, now)) {
    require(wait->count() >= 0);
    require(*wait <= std::chrono::hours(24));
  }
  check_redirect("https://cloud.langfuse.com/api/public/v3/scores?limit=100", text);
  check_redirect("http://127.0.0.1:3000/langfuse/api/public/health", text);
  if (auto origin = lfh::http_origin(text); origin.ok()) {
    require(origin->scheme == "http" || origin->scheme == "https");
    require(origin->port > 0 && origin->port < 65536);
  }
  return 0;
}
