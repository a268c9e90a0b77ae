#include "langfuse/json_scan.h"

#include <cstdint>
#include <optional>

namespace lfh::json_scan {
namespace {

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The code unit of "\uXXXX" starting at text[pos] (the backslash), or nullopt.
std::optional<unsigned> escaped_unit(std::string_view text, std::size_t pos) {
  if (pos + 6 > text.size() || text[pos] != '\\' || text[pos + 1] != 'u') return std::nullopt;
  unsigned unit = 0;
  for (std::size_t i = pos + 2; i < pos + 6; ++i) {
    int h = hex_value(text[i]);
    if (h < 0) return std::nullopt;
    unit = unit * 16 + static_cast<unsigned>(h);
  }
  return unit;
}

bool is_high_surrogate(unsigned u) {
  return u >= 0xD800 && u <= 0xDBFF;
}
bool is_low_surrogate(unsigned u) {
  return u >= 0xDC00 && u <= 0xDFFF;
}

// Length of the valid UTF-8 sequence at text[pos] (RFC 3629 table), 0 when invalid.
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos) {
  auto byte = [&](std::size_t i) -> unsigned {
    return i < text.size() ? static_cast<unsigned char>(text[i]) : 0x100;
  };
  auto in = [](unsigned b, unsigned lo, unsigned hi) { return b >= lo && b <= hi; };
  unsigned b0 = byte(pos);
  if (b0 < 0x80) return 1;
  if (in(b0, 0xC2, 0xDF)) return in(byte(pos + 1), 0x80, 0xBF) ? 2 : 0;
  if (in(b0, 0xE0, 0xEF)) {
    unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80;
    unsigned hi = b0 == 0xED ? 0x9F : 0xBF;
    return in(byte(pos + 1), lo, hi) && in(byte(pos + 2), 0x80, 0xBF) ? 3 : 0;
  }
  if (in(b0, 0xF0, 0xF4)) {
    unsigned lo = b0 == 0xF0 ? 0x90 : 0x80;
    unsigned hi = b0 == 0xF4 ? 0x8F : 0xBF;
    return in(byte(pos + 1), lo, hi) && in(byte(pos + 2), 0x80, 0xBF) &&
                   in(byte(pos + 3), 0x80, 0xBF)
               ? 4
               : 0;
  }
  return 0;
}

// Walks the text once, calling on_valid(pos, len) for runs to keep and on_bad_byte(pos) /
// on_lone_surrogate(pos) for what must be replaced. Backslashes only occur inside strings in
// grammatical JSON, so escapes can be recognised without tracking string boundaries.
template <typename Keep, typename BadByte, typename LoneSurrogate>
void walk_unicode(std::string_view text, Keep keep, BadByte bad_byte, LoneSurrogate lone) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    char c = text[pos];
    if (c == '\\' && pos + 1 < text.size()) {
      if (text[pos + 1] != 'u') {
        keep(pos, 2);
        pos += 2;
        continue;
      }
      auto unit = escaped_unit(text, pos);
      if (!unit) {  // cannot happen after scan_children(); keep the bytes as they are
        keep(pos, 2);
        pos += 2;
        continue;
      }
      if (is_high_surrogate(*unit)) {
        auto next = escaped_unit(text, pos + 6);
        if (next && is_low_surrogate(*next)) {
          keep(pos, 12);
          pos += 12;
          continue;
        }
        lone(pos);
      } else if (is_low_surrogate(*unit)) {
        lone(pos);
      } else {
        keep(pos, 6);
      }
      pos += 6;
      continue;
    }
    std::size_t len = utf8_sequence_length(text, pos);
    if (len == 0) {
      bad_byte(pos);
      ++pos;
    } else {
      keep(pos, len);
      pos += len;
    }
  }
}

class Scanner {
 public:
  Scanner(std::string_view text, std::size_t max_children, Document& out, std::string& error)
      : text_(text), max_children_(max_children), out_(out), error_(error) {}

  bool run();

 private:
  enum class Expect { kFirstKeyOrClose, kKey, kFirstValueOrClose, kValue, kCommaOrClose };

  bool fail(const char* reason) {
    error_ = std::string(reason) + " at offset " + std::to_string(pos_);
    return false;
  }
  void skip_ws() {
    while (pos_ < text_.size() && is_ws(text_[pos_])) ++pos_;
  }
  bool scan_string(bool& has_escapes);
  bool scan_number();
  bool scan_literal(std::string_view word);
  bool scan_scalar();
  // A value (scalar or closing bracket) just ended; records it when it is a child of the root.
  bool value_done();

  std::string_view text_;
  std::size_t max_children_;
  Document& out_;
  std::string& error_;
  std::size_t pos_ = 0;
  std::vector<bool> stack_;  // true = object; one entry per open container
  std::size_t child_start_ = 0;
  std::size_t child_max_depth_ = 0;
  std::string_view pending_key_;
  bool pending_key_escapes_ = false;
  Expect expect_ = Expect::kValue;
};

bool Scanner::scan_string(bool& has_escapes) {
  ++pos_;  // opening quote
  while (pos_ < text_.size()) {
    auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') {
      ++pos_;
      return true;
    }
    if (c == '\\') {
      has_escapes = true;
      if (pos_ + 1 >= text_.size()) return fail("unterminated string");
      char e = text_[pos_ + 1];
      if (e == 'u') {
        if (!escaped_unit(text_, pos_)) return fail("bad \\u escape");
        pos_ += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                 e == 'r' || e == 't') {
        pos_ += 2;
      } else {
        return fail("bad escape");
      }
      continue;
    }
    if (c < 0x20) return fail("control character in string");
    ++pos_;
  }
  return fail("unterminated string");
}

bool Scanner::scan_number() {
  auto digit_at = [&](std::size_t i) { return i < text_.size() && is_digit(text_[i]); };
  if (text_[pos_] == '-') ++pos_;
  if (pos_ < text_.size() && text_[pos_] == '0') {
    ++pos_;
  } else if (digit_at(pos_)) {
    while (digit_at(pos_)) ++pos_;
  } else {
    return fail("bad number");
  }
  if (pos_ < text_.size() && text_[pos_] == '.') {
    ++pos_;
    if (!digit_at(pos_)) return fail("bad number");
    while (digit_at(pos_)) ++pos_;
  }
  if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    if (!digit_at(pos_)) return fail("bad number");
    while (digit_at(pos_)) ++pos_;
  }
  return true;
}

bool Scanner::scan_literal(std::string_view word) {
  if (text_.substr(pos_, word.size()) != word) return fail("bad literal");
  pos_ += word.size();
  return true;
}

bool Scanner::scan_scalar() {
  char c = text_[pos_];
  bool unused_escapes = false;
  switch (c) {
    case '"':
      return scan_string(unused_escapes);
    case 't':
      return scan_literal("true");
    case 'f':
      return scan_literal("false");
    case 'n':
      return scan_literal("null");
    default:
      if (c == '-' || is_digit(c)) return scan_number();
      return fail("unexpected character");
  }
}

bool Scanner::value_done() {
  expect_ = Expect::kCommaOrClose;
  if (stack_.size() != 1) return true;
  if (out_.children.size() >= max_children_) return fail("too many items");
  Child child;
  child.key = pending_key_;
  child.key_has_escapes = pending_key_escapes_;
  child.value = text_.substr(child_start_, pos_ - child_start_);
  child.depth = child_max_depth_;
  out_.children.push_back(child);
  return true;
}

bool Scanner::run() {
  out_.children.clear();
  skip_ws();
  if (pos_ >= text_.size()) return fail("empty document");
  if (text_[pos_] != '{' && text_[pos_] != '[') return fail("root is not an object or array");
  out_.root_is_object = text_[pos_] == '{';
  stack_.push_back(out_.root_is_object);
  expect_ = out_.root_is_object ? Expect::kFirstKeyOrClose : Expect::kFirstValueOrClose;
  ++pos_;
  while (true) {
    skip_ws();
    if (pos_ >= text_.size()) return fail("unexpected end of document");
    char c = text_[pos_];
    switch (expect_) {
      case Expect::kFirstKeyOrClose:
      case Expect::kKey: {
        if (expect_ == Expect::kFirstKeyOrClose && c == '}') break;  // closed below
        if (c != '"') return fail("expected a member name");
        std::size_t key_start = pos_;
        bool escapes = false;
        if (!scan_string(escapes)) return false;
        if (stack_.size() == 1) {
          pending_key_ = text_.substr(key_start + 1, pos_ - key_start - 2);
          pending_key_escapes_ = escapes;
        }
        skip_ws();
        if (pos_ >= text_.size() || text_[pos_] != ':') return fail("expected ':'");
        ++pos_;
        expect_ = Expect::kValue;
        continue;
      }
      case Expect::kFirstValueOrClose:
        if (c == ']') break;  // closed below
        [[fallthrough]];
      case Expect::kValue:
        if (stack_.size() == 1) {
          child_start_ = pos_;
          child_max_depth_ = 0;
          if (!out_.root_is_object) {
            pending_key_ = {};
            pending_key_escapes_ = false;
          }
        }
        if (c == '{' || c == '[') {
          stack_.push_back(c == '{');
          if (stack_.size() - 1 > child_max_depth_) child_max_depth_ = stack_.size() - 1;
          ++pos_;
          expect_ = c == '{' ? Expect::kFirstKeyOrClose : Expect::kFirstValueOrClose;
          continue;
        }
        if (!scan_scalar() || !value_done()) return false;
        continue;
      case Expect::kCommaOrClose:
        if (c == ',') {
          ++pos_;
          expect_ = stack_.back() ? Expect::kKey : Expect::kValue;
          continue;
        }
        if (c != (stack_.back() ? '}' : ']')) return fail("expected ',' or a closing bracket");
        break;
    }
    // Here text_[pos_] closes the innermost container.
    ++pos_;
    stack_.pop_back();
    if (stack_.empty()) {
      skip_ws();
      if (pos_ != text_.size()) return fail("trailing characters after the document");
      return true;
    }
    if (!value_done()) return false;
  }
}

}  // namespace

bool scan_children(std::string_view text, std::size_t max_children, Document& out,
                   std::string& error) {
  Scanner scanner(text, max_children, out, error);
  return scanner.run();
}

std::string decode_string(std::string_view literal) {
  std::string out;
  if (literal.size() < 2) return out;
  const std::string_view body = literal.substr(1, literal.size() - 2);
  out.reserve(body.size());
  auto append_utf8 = [&](unsigned cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  };
  std::size_t pos = 0;
  while (pos < body.size()) {
    // Copy a run of plain ASCII at once: the common case, and what makes this fast.
    std::size_t run = pos;
    while (run < body.size()) {
      auto u = static_cast<unsigned char>(body[run]);
      if (u == '\\' || u >= 0x80) break;
      ++run;
    }
    out.append(body.data() + pos, run - pos);
    pos = run;
    if (pos >= body.size()) break;
    if (body[pos] != '\\') {
      std::size_t len = utf8_sequence_length(body, pos);
      if (len == 0) {
        out.append("\xEF\xBF\xBD");
        ++pos;
      } else {
        out.append(body.data() + pos, len);
        pos += len;
      }
      continue;
    }
    if (pos + 1 >= body.size()) break;  // not grammatical; nothing sensible to add
    char e = body[pos + 1];
    if (e != 'u') {
      switch (e) {
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        default:
          out.push_back(e);
          break;  // " \\ /
      }
      pos += 2;
      continue;
    }
    auto unit = escaped_unit(body, pos);
    if (!unit) {
      pos += 2;
      continue;
    }
    unsigned cp = *unit;
    std::size_t consumed = 6;
    if (is_high_surrogate(cp)) {
      auto low = escaped_unit(body, pos + 6);
      if (low && is_low_surrogate(*low)) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (*low - 0xDC00);
        consumed = 12;
      } else {
        cp = 0xFFFD;
      }
    } else if (is_low_surrogate(cp)) {
      cp = 0xFFFD;
    }
    append_utf8(cp);
    pos += consumed;
  }
  return out;
}

bool is_valid_utf8(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t len = utf8_sequence_length(text, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

bool has_broken_unicode(std::string_view text) {
  bool broken = false;
  walk_unicode(
      text, [](std::size_t, std::size_t) {}, [&](std::size_t) { broken = true; },
      [&](std::size_t) { broken = true; });
  return broken;
}

std::string repair_unicode(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  walk_unicode(
      text, [&](std::size_t pos, std::size_t len) { out.append(text.substr(pos, len)); },
      [&](std::size_t) { out.append("\xEF\xBF\xBD"); },
      [&](std::size_t) { out.append("\\uFFFD"); });
  return out;
}

}  // namespace lfh::json_scan
