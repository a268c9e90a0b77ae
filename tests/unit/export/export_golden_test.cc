// Every format x pick on the hand-built fixture, compared byte for byte with the expected files in
// tests/unit/export/golden/. LFHARVEST_UPDATE_GOLDEN=1 rewrites them (then read the diff!).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "export/export_fixture.h"
#include "export/exporter.h"

namespace lfh {
namespace {

using testing::read_file;
using testing::TempDir;

const std::filesystem::path kGoldenDir = std::filesystem::path(__FILE__).parent_path() / "golden";

bool update_golden() {
  const char* flag = std::getenv("LFHARVEST_UPDATE_GOLDEN");
  return flag && std::string(flag) == "1";
}

void write_golden(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// The manifest without the program version, so a version bump does not touch the golden files.
std::string stable_manifest(const std::string& text) {
  auto manifest = nlohmann::ordered_json::parse(text);
  manifest.erase("lfharvest_version");
  return manifest.dump(2, ' ', false) + "\n";
}

void check_against_golden(const std::filesystem::path& golden, const std::string& actual) {
  if (update_golden()) {
    write_golden(golden, actual);
    MESSAGE("rewrote " << golden.string());
    return;
  }
  INFO("golden file: " << golden.string()
                       << " (LFHARVEST_UPDATE_GOLDEN=1 rewrites it after a deliberate change)");
  REQUIRE(std::filesystem::exists(golden));
  CHECK(read_file(golden.string()) == actual);
}

}  // namespace

TEST_CASE("every format and pick matches its golden file byte for byte") {
  TempDir dir;
  const std::string db_path = dir.file("fixture.db");
  {
    sql::Db db = testing::open_migrated(db_path);
    testing::build_golden_fixture(db);
  }
  // {file name prefix, format, ShareGPT dialect}
  struct Variant {
    const char* prefix;
    const char* format;
    const char* dialect;
  };
  const Variant variants[] = {
      {"json", "json", "llamafactory"},
      {"jsonl", "jsonl", "llamafactory"},
      {"openai-chat", "openai-chat", "llamafactory"},
      {"openai-dpo", "openai-dpo", "llamafactory"},
      {"kto", "kto", "llamafactory"},
      {"sharegpt", "sharegpt", "llamafactory"},
      {"sharegpt-axolotl", "sharegpt", "axolotl"},
      {"trl-dpo", "trl-dpo", "llamafactory"},
  };
  const char* picks[] = {"last-generation", "all-generations", "root"};
  for (const Variant& variant : variants) {
    for (const char* pick : picks) {
      const std::string extension = std::string(variant.format) == "json" ? "json" : "jsonl";
      const std::string name = std::string(variant.prefix) + "." + pick + "." + extension;
      CAPTURE(name);
      ExportRequest request;
      request.db_path = db_path;
      request.spec.format = variant.format;
      request.spec.sharegpt_dialect = variant.dialect;
      request.spec.pick = pick;
      request.spec.out = dir.file(name);
      request.spec.positive = "Good";
      FakeClock clock;
      auto summary = run_export(request, clock, {});
      REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
      CHECK(summary->unfetched_traces == 1);  // t10-pending
      check_against_golden(kGoldenDir / name, read_file(request.spec.out));
      check_against_golden(kGoldenDir / (name + ".manifest.json"),
                           stable_manifest(read_file(summary->manifest_path)));
    }
  }
}

}  // namespace lfh

namespace lfh {

// The trainer-facing options on the same fixture: a validation split by trace id, a size limit,
// duplicates dropped, repeated answers and non-alternating turns merged. Both files of the split
// and their manifests are golden: the split must never move a trace between versions.
TEST_CASE("the export options match their golden files byte for byte") {
  TempDir dir;
  const std::string db_path = dir.file("fixture.db");
  {
    sql::Db db = testing::open_migrated(db_path);
    testing::build_golden_fixture(db);
  }
  ExportRequest request;
  request.db_path = db_path;
  request.spec.format = "openai-chat";
  request.spec.out = dir.file("options.jsonl");
  request.spec.validation_fraction = 0.3;
  request.spec.max_record_bytes = 500;
  request.spec.drop_duplicates = true;
  request.spec.repeated_answer = "merge";
  request.spec.non_alternating = "merge";
  FakeClock clock;
  auto summary = run_export(request, clock, {});
  REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
  CHECK(summary->validation_records > 0);
  CHECK(summary->skipped_by_reason.contains("record_too_large"));
  const auto golden = kGoldenDir / "options";
  check_against_golden(golden / "options.jsonl", read_file(request.spec.out));
  check_against_golden(golden / "options.validation.jsonl", read_file(summary->validation_path));
  check_against_golden(golden / "options.jsonl.manifest.json",
                       stable_manifest(read_file(summary->manifest_path)));
  check_against_golden(golden / "options.validation.jsonl.manifest.json",
                       stable_manifest(read_file(summary->validation_manifest_path)));
}

}  // namespace lfh
