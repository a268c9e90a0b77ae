// Building URL query strings: every value percent-encoded (RFC 3986), so cursors with + / = and
// names with spaces or non-ASCII characters reach the server unchanged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lfh {

/// Percent-encodes every byte except the RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string percent_encode(std::string_view text);

/// Appends name=value pairs in the order added: "limit=100&cursor=abc%2B%2F%3D".
class QueryString {
 public:
  QueryString& add(std::string_view name, std::string_view value);
  QueryString& add(std::string_view name, long long value);
  /// One parameter holding a comma-separated list; each element is encoded, the commas are not.
  /// Adds nothing for an empty list.
  QueryString& add_list(std::string_view name, const std::vector<std::string>& values);

  const std::string& str() const { return text_; }
  bool empty() const { return text_.empty(); }

 private:
  std::string text_;
};

}  // namespace lfh
