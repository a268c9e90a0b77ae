// Which URLs lfharvest talks to, and where a redirect may take its credentials.
//
// CurlHttpClient follows redirects itself (libcurl's automatic following is off) so that these
// rules, not libcurl's defaults, decide when the Authorization header travels.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace lfh {

/// scheme + host + port: two URLs with equal origins may share credentials.
struct UrlOrigin {
  std::string scheme;  // "http" or "https"
  std::string host;    // lower-cased
  long port = 0;       // explicit or the scheme's default
  bool operator==(const UrlOrigin&) const = default;
};

/// The origin of an absolute http(s) URL. kConfig for anything unparsable, another scheme, or a
/// URL that embeds credentials (user:password@host); the message never repeats such a URL.
[[nodiscard]] Result<UrlOrigin> http_origin(std::string_view url);

struct RedirectTarget {
  std::string url;           // absolute
  bool same_origin = false;  // false: the credentials must not be sent there
};

/// Resolves a Location header (absolute or relative) against the URL that answered with it.
/// kConfig when the target is unparsable, not http(s), carries credentials, or would downgrade
/// https to http (refused outright: the answer would travel unencrypted).
[[nodiscard]] Result<RedirectTarget> resolve_redirect(std::string_view from_url,
                                                      std::string_view location);

}  // namespace lfh
