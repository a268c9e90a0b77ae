#include "langfuse/query_string.h"

namespace lfh {

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    bool unreserved = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
                      u == '-' || u == '.' || u == '_' || u == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0x0F]);
    }
  }
  return out;
}

QueryString& QueryString::add(std::string_view name, std::string_view value) {
  if (!text_.empty()) text_.push_back('&');
  text_ += percent_encode(name);
  text_.push_back('=');
  text_ += percent_encode(value);
  return *this;
}

QueryString& QueryString::add(std::string_view name, long long value) {
  return add(name, std::to_string(value));
}

QueryString& QueryString::add_list(std::string_view name, const std::vector<std::string>& values) {
  if (values.empty()) return *this;
  std::string joined;
  for (const auto& value : values) {
    if (!joined.empty()) joined.push_back(',');
    joined += percent_encode(value);
  }
  if (!text_.empty()) text_.push_back('&');
  text_ += percent_encode(name);
  text_.push_back('=');
  text_ += joined;
  return *this;
}

}  // namespace lfh
