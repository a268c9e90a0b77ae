// Langfuse response bodies -> domain records. Pure functions: no I/O, no logging, never throw,
// never crash on any input (they are fuzzed: tests/fuzz/fuzz_parsers.cc).
//
// Page-level failures (the body is not JSON, not an object, has no `data` array or no usable
// `meta`) return Status kRetryable "malformed response: ..." because a truncated or garbled body
// is usually transient. A page whose cursor did not advance returns kCorrupt: following it would
// loop forever.
//
// Item-level problems never fail the page: an item that lacks a required field, has a field of
// the wrong type, a bad timestamp, is nested deeper than kMaxItemDepth or holds a number beyond
// the range of a double becomes a RecordError (record_id = its id when readable, else
// "#<index>"), and the other items are kept. Invalid UTF-8 and \u escapes of unpaired surrogates
// inside an item are replaced by U+FFFD and the item is kept.
//
// Memory: the page is split into items without building a DOM; each item is parsed, converted
// and released in turn. An observation's input and output never enter a DOM: they are taken from
// the item's text (and a v2 string holding JSON text is moved, not copied). Peak is about the
// body plus the records plus one item's DOM without its input/output.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "langfuse/model.h"

namespace lfh {

/// Items nested deeper than this (relative to the item) are refused as RecordErrors, so that
/// nothing downstream (serialization, copies) recurses without bound.
inline constexpr std::size_t kMaxItemDepth = 512;
/// A page with more items than this is refused as malformed (the API's maximum page is 1000).
inline constexpr std::size_t kMaxItemsPerPage = 100'000;

/// "4.16.0" -> kCurrent (major >= 4), "3.x"/"2.x" -> kLegacy, anything else -> kUnknown.
/// A leading "v" is accepted.
ApiGeneration generation_from_version(std::string_view version);

/// GET /api/public/health: {"status":"OK","version":"4.16.0"}. A missing or non-string version
/// gives an empty version and kUnknown.
Result<ServerInfo> parse_health(std::string_view body);

/// GET /api/public/projects: {"data":[{"id":...,"name":...}, ...]}; returns the first project.
/// An empty list -> kAuth (the key is not scoped to a project); a project without a string id ->
/// kRetryable malformed.
Result<ProjectInfo> parse_projects(std::string_view body);

/// GET /api/public/v3/scores. next_cursor = meta.cursor (nullopt when absent, null or empty; kept
/// on an empty page, whose cursor must still be followed). previous_cursor: the cursor the request
/// was sent with; a page whose cursor equals it -> kCorrupt "cursor did not advance".
Result<ScorePage> parse_scores_v3(std::string_view body,
                                  const std::optional<std::string>& previous_cursor = std::nullopt);

/// GET /api/public/scores (legacy, page paging). current_page: the page requested (values < 1
/// are taken as 1). next_cursor = the next page number as text while current_page <
/// meta.totalPages and the page has items; a missing or non-integer totalPages is malformed.
Result<ScorePage> parse_scores_legacy(std::string_view body, int current_page);

/// GET /api/public/v2/observations. input/output arrive as raw strings: valid JSON text is kept
/// as it is, anything else (plain text) is stored as a JSON string. updatedAt (field group
/// `time`; legacy items always carry it) becomes Observation::updated_at. Cursor rules as for
/// parse_scores_v3(). All four listings share one page parser: the envelope, the generation's
/// paging rule, then one item at a time.
Result<ObservationPage> parse_observations_v2(
    std::string_view body, const std::optional<std::string>& previous_cursor = std::nullopt);

/// GET /api/public/observations (legacy). input/output arrive as JSON values and are kept as the
/// text the server sent (whitespace and key order included). Paging rules as for
/// parse_scores_legacy().
Result<ObservationPage> parse_observations_legacy(std::string_view body, int current_page);

/// v2 input/output: `raw` itself when it is one valid JSON text, else `raw` as a JSON string.
std::string json_text_from_raw_string(std::string raw);

}  // namespace lfh
