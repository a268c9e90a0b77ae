// A structural JSON scanner: finds the children of a document's root container without building
// a DOM, so a page of API results can be split into items and each item parsed (and rejected) on
// its own. Used by langfuse/parse.cc; pure and fuzzable.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lfh::json_scan {

/// One member of the root object or one element of the root array. Views point into the text
/// given to scan_children(): they live as long as it does.
struct Child {
  std::string_view key;  // member name as written, without quotes, escapes not decoded
  bool key_has_escapes = false;
  std::string_view value;  // the value's text, without surrounding whitespace
  std::size_t depth = 0;   // nesting of the value: 0 for a scalar, 1 for a flat object/array...
};

struct Document {
  bool root_is_object = false;
  std::vector<Child> children;
};

/// Scans `text`, which must hold exactly one JSON object or array (whitespace around it allowed).
/// Checks the whole JSON grammar except two things left to the parser of each child: bytes inside
/// strings are not checked to be UTF-8 (nor \u escapes to pair surrogates), and numbers are not
/// checked to fit a double. Iterative: any nesting depth is fine; memory is the children plus one
/// bit per nesting level.
/// Returns true and fills `out`; false with a short reason in `error` on a grammar error, a root
/// that is not an object or array, or more than `max_children` children.
[[nodiscard]] bool scan_children(std::string_view text, std::size_t max_children, Document& out,
                                 std::string& error);

/// The text of a JSON string literal (quotes included, as scan_children() found it: grammatical),
/// decoded to UTF-8. Invalid UTF-8 bytes and \u escapes of unpaired surrogates become U+FFFD.
/// Much faster than a general JSON parser on multi-megabyte strings.
std::string decode_string(std::string_view literal);

/// True when `text` is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points
/// beyond U+10FFFF). Any bytes may be given.
[[nodiscard]] bool is_valid_utf8(std::string_view text);

/// True when `text` holds bytes that are not UTF-8 or \u escapes of unpaired surrogates.
/// `text` must be grammatical JSON (every backslash belongs to an escape in a string).
[[nodiscard]] bool has_broken_unicode(std::string_view text);

/// A copy of `text` with each invalid UTF-8 byte replaced by U+FFFD and each \u escape of an
/// unpaired surrogate replaced by \uFFFD. Same precondition as has_broken_unicode().
std::string repair_unicode(std::string_view text);

}  // namespace lfh::json_scan
