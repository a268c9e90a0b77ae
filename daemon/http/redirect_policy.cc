#include "http/redirect_policy.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>

namespace lfh {
namespace {

struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using CurlUrl = std::unique_ptr<CURLU, CurlUrlDeleter>;

struct CurlStringDeleter {
  void operator()(char* text) const { curl_free(text); }
};

// Reads one part; empty when the part is absent.
std::string url_part(CURLU* url, CURLUPart part, unsigned int flags = 0) {
  char* raw = nullptr;
  if (curl_url_get(url, part, &raw, flags) != CURLUE_OK || raw == nullptr) return {};
  std::unique_ptr<char, CurlStringDeleter> owned(raw);
  return std::string(raw);
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

Status config_error(std::string message) {
  return Status::Error(ErrorKind::kConfig, std::move(message));
}

// Checks a parsed URL and extracts its origin. `what` names the URL in messages ("URL",
// "redirect target"); the URL itself is only quoted when it carries no credentials.
Result<UrlOrigin> origin_of(CURLU* url, std::string_view what) {
  if (!url_part(url, CURLUPART_USER).empty() || !url_part(url, CURLUPART_PASSWORD).empty()) {
    return config_error(std::string(what) +
                        " embeds credentials (user:password@host); give them separately");
  }
  UrlOrigin origin;
  origin.scheme = lower(url_part(url, CURLUPART_SCHEME));
  if (origin.scheme != "http" && origin.scheme != "https") {
    return config_error(std::string(what) + " has scheme '" + origin.scheme +
                        "'; only http and https are allowed");
  }
  origin.host = lower(url_part(url, CURLUPART_HOST));
  if (origin.host.empty()) return config_error(std::string(what) + " has no host");
  std::string port = url_part(url, CURLUPART_PORT, CURLU_DEFAULT_PORT);
  origin.port = port.empty() ? 0 : std::strtol(port.c_str(), nullptr, 10);
  if (origin.port < 1 || origin.port > 65535) {
    return config_error(std::string(what) + " has an invalid port");
  }
  return origin;
}

}  // namespace

Result<UrlOrigin> http_origin(std::string_view url) {
  CurlUrl parsed(curl_url());
  if (!parsed) return Status::Error(ErrorKind::kFatal, "out of memory parsing a URL");
  std::string text(url);
  CURLUcode rc = curl_url_set(parsed.get(), CURLUPART_URL, text.c_str(), 0);
  if (rc != CURLUE_OK) {
    // The URL may hold credentials, so it is not quoted; curl's reason is enough to find it.
    return config_error(std::string("invalid URL: ") + curl_url_strerror(rc));
  }
  return origin_of(parsed.get(), "URL");
}

Result<RedirectTarget> resolve_redirect(std::string_view from_url, std::string_view location) {
  Result<UrlOrigin> from = http_origin(from_url);
  if (!from.ok()) return from.status();

  CurlUrl parsed(curl_url());
  if (!parsed) return Status::Error(ErrorKind::kFatal, "out of memory parsing a URL");
  std::string base(from_url);
  std::string target(location);
  // Setting a URL on a handle that already holds one resolves relative references against it.
  if (curl_url_set(parsed.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK) {
    return config_error("invalid URL");
  }
  CURLUcode rc = curl_url_set(parsed.get(), CURLUPART_URL, target.c_str(), 0);
  if (rc != CURLUE_OK) {
    return config_error(std::string("invalid redirect target: ") + curl_url_strerror(rc));
  }
  Result<UrlOrigin> to = origin_of(parsed.get(), "redirect target");
  if (!to.ok()) return to.status();
  if (from->scheme == "https" && to->scheme == "http") {
    return config_error("refused redirect from https to http (" + to->host +
                        "): it would send the request unencrypted");
  }
  RedirectTarget result;
  result.url = url_part(parsed.get(), CURLUPART_URL);
  result.same_origin = *from == *to;
  if (result.url.empty()) return config_error("invalid redirect target");
  // An empty userinfo ("https://@host/") has no user part but still puts '@' in the authority.
  std::string_view rest(result.url);
  if (auto scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    rest.remove_prefix(scheme_end + 3);
    if (rest.substr(0, rest.find_first_of("/?#")).find('@') != std::string_view::npos) {
      return config_error("redirect target embeds credentials (user:password@host)");
    }
  }
  return result;
}

}  // namespace lfh
