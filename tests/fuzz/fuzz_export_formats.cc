// libFuzzer target: the export converters. The input is one stored row: 3 selector bytes (score
// data type, value kind, positive label) then NUL-separated columns as the database holds them
// (input, output, metadata, attributes, usage, score value, label, comment, model, name). Every
// format is converted with every pick. Checks: a record is one line of valid JSON, a skip has a
// reason code, conversion is deterministic, record_key() works. Seeds: corpus/export_formats/.
#include <array>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "export/formats.h"

namespace {

void require(bool condition) {
  if (!condition) __builtin_trap();
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> fields;
  for (;;) {
    const auto nul = text.find('\0');
    fields.emplace_back(text.substr(0, nul));
    if (nul == std::string_view::npos) break;
    text.remove_prefix(nul + 1);
  }
  return fields;
}

std::optional<std::string> optional_field(const std::vector<std::string>& fields, std::size_t i) {
  if (i >= fields.size() || fields[i] == "\x01") return std::nullopt;  // \x01 stands for NULL
  return fields[i];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  static constexpr std::array<const char*, 6> kTypes = {"NUMERIC",    "CATEGORICAL", "BOOLEAN",
                                                        "CORRECTION", "TEXT",        ""};
  static constexpr std::array<const char*, 5> kPositive = {"", "Good", "true", "false", "1"};
  const auto fields = split(std::string_view(reinterpret_cast<const char*>(data + 3), size - 3));
  auto field = [&](std::size_t i) { return i < fields.size() ? fields[i] : std::string("null"); };

  lfh::DatasetRow row;
  row.project_id = "proj";
  row.trace_id = "trace-1";
  row.score_id = "score-1";
  row.score_name = "quality";
  row.score_source = "ANNOTATION";
  if (const char* type = kTypes[data[0] % kTypes.size()]; *type) row.score_data_type = type;
  row.score_value_json = field(5);
  if (data[1] & 1) row.score_value_num = static_cast<double>(static_cast<std::int8_t>(data[1])) / 4;
  row.score_string_value = optional_field(fields, 6);
  row.score_comment = optional_field(fields, 7);
  row.score_timestamp = "2026-01-31T12:00:00.000Z";
  if (data[1] & 2) row.score_observation_id = "obs-1";
  row.has_observation = (data[1] & 4) == 0;
  row.observation_id = "obs-1";
  row.observation_type = (data[1] & 8) ? "SPAN" : "GENERATION";
  row.observation_name = optional_field(fields, 9);
  row.start_time = "2026-01-31T11:59:00.000Z";
  row.model = optional_field(fields, 8);
  row.input_json = field(0);
  row.output_json = field(1);
  row.metadata_json = optional_field(fields, 2);
  row.attributes_json = fields.size() > 3 ? fields[3] : "{}";
  row.usage_json = optional_field(fields, 4);

  lfh::ConvertOptions options;
  if (const char* positive = kPositive[data[2] % kPositive.size()]; *positive) {
    options.positive = positive;
  }
  using lfh::ExportFormat;
  using lfh::ObservationPick;
  for (ExportFormat format :
       {ExportFormat::kJson, ExportFormat::kJsonl, ExportFormat::kOpenAiChat,
        ExportFormat::kOpenAiDpo, ExportFormat::kKto, ExportFormat::kShareGpt}) {
    for (ObservationPick pick : {ObservationPick::kLastGeneration, ObservationPick::kAllGenerations,
                                 ObservationPick::kRoot}) {
      options.pick = pick;
      lfh::ConvertedRecord first;
      lfh::convert_record(format, row, options, first);
      if (first.ok()) {
        require(first.text.find('\n') == std::string::npos);
        require(nlohmann::json::accept(first.text));
      } else {
        require(!first.skip.code.empty());
      }
      lfh::ConvertedRecord second;
      lfh::convert_record(format, row, options, second);
      require(second.ok() == first.ok() && second.text == first.text &&
              second.skip.code == first.skip.code);
      require(!lfh::record_key(row, pick).empty());
    }
  }
  return 0;
}
