// The dataset formats of `lfharvest export`: one DatasetRow in, one JSON record (or a reason to
// skip it) out. docs/formats.md shows every format with an example line and its field mapping.
//
// Conversion is pure and deterministic: the same row gives the same bytes. Object keys keep the
// order they had in the stored JSON; numbers are printed in their shortest round-trip form;
// non-ASCII text is written as UTF-8, not \u escapes.
//
// Skip reasons (stable codes, counted in the summary and the manifest):
//   no_generation        pick last-generation / all-generations: the trace has no GENERATION
//   no_root_observation  pick root: the trace has no observation without a parent
//   bad_stored_json      input, output, usage, metadata or attributes is not valid JSON (or
//                        nests deeper than 512 levels)
//   bad_score_value      the score's value_json is not valid JSON
//   missing_input        chat formats: input is null or an empty list
//   unrecognized_input   chat formats: input holds no chat messages
//   missing_output       chat formats: output is null/empty, or a message without content/calls
//   unrecognized_output  chat formats: output is not a message, string or OpenAI response
//   unreadable_tools     chat formats: a tools value that is not a list of objects
//   wrong_score_type     openai-dpo without a CORRECTION score; kto without BOOLEAN/CATEGORICAL
//   empty_correction     openai-dpo: the correction is empty
//   correction_equals_output  openai-dpo: the correction is the original output
//   kto_positive_not_set kto: a CATEGORICAL score but no positive value configured
//   non_text_content     sharegpt: a message part that is not text (image, audio, ...)
//   unknown_role         sharegpt: a role other than system/developer/user/assistant/tool
//   text_with_tool_calls sharegpt llamafactory: an assistant message with both text and tool
//                        calls (a function_call turn holds calls only)
//   non_alternating_turns  --non-alternating drop, or sharegpt llamafactory: turns that do not
//                        alternate user/assistant (LLaMA-Factory drops such examples)
//   repeated_answer      --repeated-answer drop: the last input message repeats the output
//   invalid_utf8         a text column holds bytes that are not UTF-8
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "export/chat_messages.h"
#include "store/dataset_reader.h"

namespace lfh {

enum class ExportFormat { kJson, kJsonl, kOpenAiChat, kOpenAiDpo, kKto, kShareGpt, kTrlDpo };

/// "json" | "jsonl" | "openai-chat" | "openai-dpo" | "kto" | "sharegpt" | "trl-dpo"; nullopt
/// otherwise.
std::optional<ExportFormat> parse_export_format(std::string_view name);
const char* export_format_name(ExportFormat format);

/// "last-generation" | "all-generations" | "root"; nullopt otherwise.
std::optional<ObservationPick> parse_pick(std::string_view name);
const char* pick_name(ObservationPick pick);

/// Score data types that suit the format; a trace's representative score is taken among them
/// first (openai-dpo: CORRECTION; kto: BOOLEAN, CATEGORICAL). Empty: any score suits.
std::vector<std::string> preferred_score_types(ExportFormat format);

/// The ShareGPT role names of one loader (docs/formats.md).
///   llamafactory: system / human / gpt / function_call / observation, strictly alternating, as
///                 LLaMA-Factory's default dataset_info tags want.
///   axolotl:      system / user / assistant / tool, the names Axolotl's chat_template loader
///                 (and TRL's from/value conversion) map without a role table; tool calls are
///                 the assistant's text.
enum class ShareGptDialect { kLlamaFactory, kAxolotl };
/// "llamafactory" | "axolotl"; nullopt otherwise.
std::optional<ShareGptDialect> parse_sharegpt_dialect(std::string_view name);
const char* sharegpt_dialect_name(ShareGptDialect dialect);

/// What the chat formats do with a conversation defect (counted either way):
///   keep  write it as it is; drop  skip the record; merge  repair it (see ConvertOptions).
enum class TurnPolicy { kKeep, kDrop, kMerge };
/// "keep" | "drop" | "merge"; nullopt otherwise.
std::optional<TurnPolicy> parse_turn_policy(std::string_view name);
const char* turn_policy_name(TurnPolicy policy);

struct ConvertOptions {
  ObservationPick pick = ObservationPick::kLastGeneration;
  /// kto: the value counted as a positive label. CATEGORICAL scores need it; for BOOLEAN scores
  /// true is positive unless this is "true" or "false".
  std::optional<std::string> positive;
  ShareGptDialect sharegpt_dialect = ShareGptDialect::kLlamaFactory;
  /// The last input message is an assistant message equal to the output (the application logged
  /// its answer twice). merge: the repeated input message is left out.
  TurnPolicy repeated_answer = TurnPolicy::kKeep;
  /// Two consecutive system, user or assistant messages (tool results may follow each other).
  /// merge: each run becomes one message, texts joined by a blank line, tool calls concatenated.
  TurnPolicy non_alternating = TurnPolicy::kKeep;
};

struct ConvertedRecord {
  std::string text;              // one line of JSON without the newline, when ok()
  SkipReason skip;               // code empty when ok()
  bool repeated_answer = false;  // chat formats: found (whatever the policy did with it)
  bool non_alternating = false;
  bool ok() const { return skip.code.empty(); }
};

/// Converts row into the format's record. Never throws; out is overwritten.
void convert_record(ExportFormat format, const DatasetRow& row, const ConvertOptions& options,
                    ConvertedRecord& out);

/// The record's identity for incremental exports: "project_id/trace_id", plus
/// "/observation_id" for all-generations (one record per generation).
std::string record_key(const DatasetRow& row, ObservationPick pick);

}  // namespace lfh
