// run_export() end to end on hand-built databases: determinism, atomic output, standard output,
// incremental named exports, cancellation, a multi-megabyte record, SIGKILL mid-export.
#include "export/exporter.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "export/export_fixture.h"
#include "export/sha256.h"

namespace lfh {
namespace {

using testing::read_file;
using testing::TempDir;

struct Golden {
  TempDir dir;
  std::string db = dir.file("fixture.db");
  Golden() {
    sql::Db handle = testing::open_migrated(db);
    testing::build_golden_fixture(handle);
  }
  ExportRequest request(const std::string& format, const std::string& out_name) const {
    ExportRequest r;
    r.db_path = db;
    r.spec.format = format;
    r.spec.out = dir.file(out_name);
    return r;
  }
};

Result<ExportSummary> run(const ExportRequest& request) {
  FakeClock clock;
  return run_export(request, clock, {});
}

// Files in dir, without the database and its -wal/-shm (a read-only connection may leave them).
std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (name.find(".db") == std::string::npos) names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("two runs on the same database give the same bytes, and the manifest describes them") {
  Golden g;
  for (const char* format : {"json", "jsonl", "openai-chat", "sharegpt"}) {
    CAPTURE(format);
    auto first_request = g.request(format, "first.out");
    auto second_request = g.request(format, "second.out");
    auto first = run(first_request);
    auto second = run(second_request);
    REQUIRE(first.ok());
    REQUIRE(second.ok());
    const std::string bytes = read_file(first_request.spec.out);
    CHECK(bytes == read_file(second_request.spec.out));
    CHECK(first->sha256 == Sha256::of(bytes));
    CHECK(first->bytes == bytes.size());
    auto manifest = nlohmann::json::parse(read_file(first->manifest_path));
    CHECK(manifest["sha256"] == first->sha256);
    CHECK(manifest["records"] == first->records);
    CHECK(manifest["file"] == "first.out");
    CHECK(manifest["database"]["file"] == "fixture.db");
    CHECK(manifest["created_at"] == "2023-11-14T22:13:20.000Z");  // the injected clock
  }
}

TEST_CASE("the output folder holds the file and its manifest only, mode 0640") {
  Golden g;
  const mode_t old_mask = ::umask(022);
  std::filesystem::create_directory(g.dir.path() / "out");
  auto request = g.request("jsonl", "out/data.jsonl");
  auto summary = run(request);
  ::umask(old_mask);
  REQUIRE(summary.ok());
  CHECK(names_in(g.dir.path() / "out") ==
        std::vector<std::string>{"data.jsonl", "data.jsonl.manifest.json"});
  struct stat st {};
  REQUIRE(::stat(request.spec.out.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
}

TEST_CASE("stale temp files of a killed export are removed at the start") {
  Golden g;
  auto request = g.request("jsonl", "data.jsonl");
  std::ofstream(g.dir.file(".data.jsonl.tmp.99999999.dead")) << "half a record";
  std::ofstream(g.dir.file(".data.jsonl.manifest.json.tmp.99999999.dead")) << "{";
  auto summary = run(request);
  REQUIRE(summary.ok());
  CHECK(summary->stale_temp_files_removed == 2);
  CHECK(names_in(g.dir.path()) ==
        std::vector<std::string>{"data.jsonl", "data.jsonl.manifest.json"});
}

TEST_CASE("standard output gets the same bytes and no manifest") {
  Golden g;
  auto file_request = g.request("openai-chat", "chat.jsonl");
  REQUIRE(run(file_request).ok());
  const std::string captured = g.dir.file("captured");
  int fd = ::open(captured.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  auto stdout_request = g.request("openai-chat", "unused");
  stdout_request.spec.out = "-";
  stdout_request.stdout_fd = fd;
  auto summary = run(stdout_request);
  ::close(fd);
  REQUIRE(summary.ok());
  CHECK(read_file(captured) == read_file(file_request.spec.out));
  CHECK(summary->manifest_path.empty());
  CHECK(summary->out_path == "-");
  CHECK_FALSE(std::filesystem::exists(g.dir.file("-")));
}

TEST_CASE("an empty selection gives a valid empty file") {
  Golden g;
  auto json = g.request("json", "empty.json");
  json.spec.score_names = {"no-such-score"};
  auto summary = run(json);
  REQUIRE(summary.ok());
  CHECK(summary->records == 0);
  CHECK(read_file(json.spec.out) == "[]\n");
  auto jsonl = g.request("jsonl", "empty.jsonl");
  jsonl.spec.score_names = {"no-such-score"};
  REQUIRE(run(jsonl).ok());
  CHECK(read_file(jsonl.spec.out).empty());
}

TEST_CASE("bad requests are refused before anything is written") {
  Golden g;
  auto expect_config_error = [&](ExportRequest r) {
    auto summary = run(r);
    CHECK(summary.status().kind() == ErrorKind::kConfig);
    CHECK_FALSE(std::filesystem::exists(r.spec.out));
  };
  auto r = g.request("csv", "x");
  expect_config_error(r);
  r = g.request("jsonl", "x");
  r.spec.pick = "first";
  expect_config_error(r);
  r = g.request("jsonl", "x");
  r.spec.min = 5;
  r.spec.max = 1;
  expect_config_error(r);
  r = g.request("jsonl", "x");
  r.spec.since = "yesterday";
  expect_config_error(r);
  r = g.request("jsonl", "x");
  r.spec.incremental = true;  // without a name
  expect_config_error(r);
  r = g.request("jsonl", "");
  r.spec.out.clear();
  CHECK(run(r).status().kind() == ErrorKind::kConfig);
}

TEST_CASE("databases the export cannot use") {
  TempDir dir;
  ExportRequest r;
  r.spec.format = "jsonl";
  r.spec.out = dir.file("out.jsonl");
  r.db_path = dir.file("missing.db");
  CHECK(run(r).status().kind() == ErrorKind::kIo);
  {
    auto empty = sql::Db::open(dir.file("empty.db"), sql::Db::Mode::kReadWrite);
    REQUIRE(empty.ok());
  }
  r.db_path = dir.file("empty.db");
  CHECK(run(r).status().kind() == ErrorKind::kCorrupt);
  {
    sql::Db future = testing::open_migrated(dir.file("future.db"));
    REQUIRE(future.exec("PRAGMA user_version = 999").ok());
  }
  r.db_path = dir.file("future.db");
  auto summary = run(r);
  CHECK(summary.status().kind() == ErrorKind::kFatal);
  CHECK(summary.status().message().find("999") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(r.spec.out));
}

TEST_CASE("a failed write leaves the old file and no temp file") {
  Golden g;
  auto request = g.request("jsonl", "data.jsonl");
  REQUIRE(run(request).ok());
  const std::string old_bytes = read_file(request.spec.out);
  SUBCASE("cancelled half-way") {
    std::stop_source stop;
    request.on_progress = [&](const ExportProgress& p) {
      if (p.records == 3) stop.request_stop();
    };
    FakeClock clock;
    auto summary = run_export(request, clock, stop.get_token());
    CHECK(summary.status().kind() == ErrorKind::kCancelled);
  }
  SUBCASE("the output folder is gone") {
    request.spec.out = g.dir.file("gone/data.jsonl");
    CHECK(run(request).status().kind() == ErrorKind::kIo);
  }
  CHECK(read_file(g.dir.file("data.jsonl")) == old_bytes);
  CHECK(names_in(g.dir.path()) ==
        std::vector<std::string>{"data.jsonl", "data.jsonl.manifest.json"});
}

TEST_CASE("skips are counted by reason and the rest is exported") {
  Golden g;
  auto request = g.request("openai-chat", "chat.jsonl");
  auto summary = run(request);
  REQUIRE(summary.ok());
  CHECK(summary->records == 10);
  CHECK(summary->skipped_by_reason == std::map<std::string, std::size_t>{{"bad_stored_json", 1},
                                                                         {"missing_output", 1},
                                                                         {"no_generation", 1}});
  CHECK(summary->skipped() == 3);
  CHECK(summary->unfetched_traces == 1);
  CHECK(lines_of(read_file(request.spec.out)).size() == 10);
}

TEST_CASE("named incremental export: everything, then nothing, then only what changed") {
  Golden g;
  auto request = g.request("jsonl", "good.jsonl");
  request.spec.name = "good";
  request.spec.incremental = true;

  // The full export a user already has: an incremental run must never replace it.
  std::ofstream(request.spec.out) << "the full export\n";

  auto first = run(request);
  REQUIRE(first.ok());
  CHECK(first->records == 11);
  CHECK(first->unchanged == 0);
  CHECK(first->out_path == g.dir.file("good.delta-000001.jsonl"));
  CHECK(lines_of(read_file(first->out_path)).size() == 11);
  CHECK(std::filesystem::exists(first->out_path + ".manifest.json"));
  const std::string first_sha = first->sha256;

  auto second = run(request);
  REQUIRE(second.ok());
  CHECK(second->records == 0);
  CHECK(second->unchanged == 11);
  CHECK(second->nothing_new);
  CHECK_FALSE(std::filesystem::exists(g.dir.file("good.delta-000002.jsonl")));
  CHECK(read_file(request.spec.out) == "the full export\n");
  CHECK(format_summary_line(*second).find("11 unchanged") != std::string::npos);

  {
    sql::Db db = testing::open_migrated(g.db);
    // An annotator edits one score; another trace gets a newer generation.
    REQUIRE(db.exec("UPDATE scores SET comment = 'edited' WHERE score_id = 's02'").ok());
    testing::insert(db, testing::ObservationRow{.observation_id = "o12-gen-b",
                                                .trace_id = "t12-numeric",
                                                .start_time = "2026-01-10T10:30:00.000Z",
                                                .input_json = R"("Rate again.")",
                                                .output_json = R"("5/5")"});
  }
  auto third = run(request);
  REQUIRE(third.ok());
  CHECK(third->records == 2);
  CHECK(third->unchanged == 9);
  CHECK(read_file(request.spec.out) == "the full export\n");
  auto lines = lines_of(read_file(g.dir.file("good.delta-000003.jsonl")));
  REQUIRE(lines.size() == 2);
  CHECK(nlohmann::json::parse(lines[0])["comment"] == "edited");
  CHECK(nlohmann::json::parse(lines[1])["observation_id"] == "o12-gen-b");

  SUBCASE("a full run of the same export still writes everything") {
    request.spec.incremental = false;
    auto full = run(request);
    REQUIRE(full.ok());
    CHECK(full->records == 11);
    CHECK(full->unchanged == 0);
    CHECK(full->sha256 != first_sha);  // the two edits
  }
  SUBCASE("another export name has its own state") {
    request.spec.name = "other";
    auto other = run(request);
    REQUIRE(other.ok());
    CHECK(other->records == 11);
  }
  SUBCASE("the runs are recorded") {
    sql::Db db = testing::open_migrated(g.db);
    auto stmt = db.prepare(
        "SELECT count(*), sum(records), sum(unchanged) FROM export_runs"
        " WHERE export_name = 'good' AND finished_at IS NOT NULL");
    REQUIRE(stmt.ok());
    REQUIRE(*stmt->step());
    CHECK(stmt->int64(0) == 3);
    CHECK(stmt->int64(1) == 13);
    CHECK(stmt->int64(2) == 20);
  }
}

TEST_CASE("an interrupted named run changes no state: its records come again next time") {
  Golden g;
  auto request = g.request("jsonl", "good.jsonl");
  request.spec.name = "good";
  request.spec.incremental = true;
  std::stop_source stop;
  request.on_progress = [&](const ExportProgress& p) {
    if (p.records == 5) stop.request_stop();
  };
  FakeClock clock;
  CHECK(run_export(request, clock, stop.get_token()).status().kind() == ErrorKind::kCancelled);
  request.on_progress = nullptr;
  auto again = run(request);
  REQUIRE(again.ok());
  CHECK(again->records == 11);
  sql::Db db = testing::open_migrated(g.db);
  auto pending = db.prepare("SELECT count(*) FROM export_pending");
  REQUIRE(pending.ok());
  REQUIRE(*pending->step());
  CHECK(pending->int64(0) == 0);  // the killed run's rows were dropped
}

TEST_CASE("a plain export never writes to the database") {
  Golden g;
  {
    sql::Db db = testing::open_migrated(g.db);
    REQUIRE(db.exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  }
  const auto before = std::filesystem::last_write_time(g.db);
  ::chmod(g.db.c_str(), 0440);  // read-only file: a write would fail
  auto summary = run(g.request("jsonl", "out.jsonl"));
  ::chmod(g.db.c_str(), 0640);
  CHECK(summary.ok());
  CHECK(std::filesystem::last_write_time(g.db) == before);
  sql::Db db = testing::open_migrated(g.db);
  auto runs = db.prepare("SELECT count(*) FROM export_runs");
  REQUIRE(runs.ok());
  REQUIRE(*runs->step());
  CHECK(runs->int64(0) == 0);
}

TEST_CASE("a record of several megabytes is exported whole") {
  TempDir dir;
  const std::string db_path = dir.file("big.db");
  std::string huge;
  while (huge.size() < (6u << 20)) huge += "长文本 with emoji 🚀 and \"quotes\"\n";
  {
    sql::Db db = testing::open_migrated(db_path);
    testing::insert_chat_record(db, 1, huge);
    testing::insert_chat_record(db, 2);
  }
  for (const char* format : {"json", "jsonl", "openai-chat", "sharegpt"}) {
    CAPTURE(format);
    ExportRequest request;
    request.db_path = db_path;
    request.spec.format = format;
    request.spec.out = dir.file(std::string("big.") + format);
    auto summary = run(request);
    REQUIRE(summary.ok());
    CHECK(summary->records == 2);
    CHECK(summary->bytes > huge.size());
    const std::string bytes = read_file(request.spec.out);
    // The text survives exactly (escaped once as a JSON string).
    CHECK(bytes.find(nlohmann::json(huge).dump().substr(1, 1000)) != std::string::npos);
    if (std::string(format) == "json") {
      CHECK(nlohmann::json::parse(bytes)[0]["output"] == huge);
    }
  }
}

TEST_CASE("summary and progress lines") {
  ExportSummary s;
  s.records = 120;
  s.bytes = 1536;
  s.seconds = 0.25;
  s.out_path = "good.jsonl";
  CHECK(format_summary_line(s) == "exported 120 records (1.5 KiB) to good.jsonl in 0.2 s");
  s.skipped_by_reason = {{"no_generation", 1}, {"missing_output", 2}};
  s.unfetched_traces = 1;
  s.out_path = "-";
  CHECK(format_summary_line(s) ==
        "exported 120 records (1.5 KiB) to standard output in 0.2 s; skipped 3 (missing_output: "
        "2, no_generation: 1); 1 matching trace not fetched yet");
  ExportProgress p;
  p.records = 1200;
  p.skipped = 3;
  p.bytes = 14u << 20;
  p.seconds = 2.14;
  CHECK(format_progress_line(p) == "exporting: 1200 records, 3 skipped, 14.0 MiB, 2.1 s");
  CHECK(format_bytes(0) == "0 B");
  CHECK(format_bytes(1023) == "1023 B");
  CHECK(format_bytes(3ull << 30) == "3.0 GiB");
}

// RELIABILITY.md test 2: SIGKILL during an export never leaves a torn file. A child process
// exports while the parent kills it at many points (after N records, and around the rename). The
// target must always hold either the previous complete export or the new complete one.
TEST_CASE("SIGKILL during an export leaves the old file or the new one, never a torn one") {
  TempDir dir;
  const std::string db_path = dir.file("kill.db");
  {
    sql::Db db = testing::open_migrated(db_path);
    REQUIRE(db.exec("BEGIN").ok());
    for (int i = 0; i < 3000; ++i) testing::insert_chat_record(db, i, std::string(600, 'a'));
    REQUIRE(db.exec("COMMIT").ok());
  }
  ExportRequest request;
  request.db_path = db_path;
  request.spec.format = "json";
  request.spec.out = dir.file("data.json");
  REQUIRE(run(request).ok());
  const std::string complete = read_file(request.spec.out);
  REQUIRE(nlohmann::json::parse(complete).size() == 3000);

  std::size_t kills_before_rename = 0;
  for (std::size_t kill_after : {0, 1, 10, 500, 1500, 2999, 3000, 3000, 3000, 3000}) {
    CAPTURE(kill_after);
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::close(ready[0]);
      request.on_progress = [&](const ExportProgress& p) {
        if (p.records == kill_after || (kill_after == 0 && p.records == 1)) {
          (void)!::write(ready[1], "k", 1);
        }
      };
      FakeClock clock;
      auto summary = run_export(request, clock, {});
      ::_exit(summary.ok() ? 0 : 1);
    }
    ::close(ready[1]);
    char signal_byte = 0;
    const bool signalled = ::read(ready[0], &signal_byte, 1) == 1;
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ::close(ready[0]);
    CHECK(signalled);
    if (WIFSIGNALED(status)) ++kills_before_rename;
    CHECK(read_file(request.spec.out) == complete);
  }
  MESSAGE("killed " << kills_before_rename << " of 10 exports before they finished");
  CHECK(kills_before_rename > 0);
  // The next export cleans up what the killed ones left.
  auto after = run(request);
  REQUIRE(after.ok());
  CHECK(names_in(dir.path()) == std::vector<std::string>{"data.json", "data.json.manifest.json"});
}

}  // namespace lfh

namespace lfh {

TEST_CASE("a dry run counts what would be written and writes nothing") {
  Golden g;
  auto request = g.request("openai-chat", "chat.jsonl");
  request.spec.name = "chat";  // a named export: not even its state is touched
  request.dry_run = true;
  auto dry = run(request);
  REQUIRE(dry.ok());
  CHECK(dry->dry_run);
  CHECK(names_in(g.dir.path()).empty());
  request.dry_run = false;
  request.spec.name.clear();
  auto real = run(request);
  REQUIRE(real.ok());
  CHECK(dry->records == real->records);
  CHECK(dry->bytes == real->bytes);
  CHECK(dry->skipped_by_reason == real->skipped_by_reason);
  CHECK(format_summary_line(*dry).starts_with("dry run: would write 10 records"));
  sql::Db db = testing::open_migrated(g.db);
  auto runs = db.prepare("SELECT count(*) FROM export_runs");
  REQUIRE(runs.ok());
  REQUIRE(*runs->step());
  CHECK(runs->int64(0) == 0);
}

TEST_CASE("a reader that closes standard output ends the export normally") {
  Golden g;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::close(fds[0]);  // the reader is gone before the first byte: every write gets EPIPE
  ::signal(SIGPIPE, SIG_IGN);
  auto request = g.request("jsonl", "unused");
  request.spec.out = "-";
  request.stdout_fd = fds[1];
  request.spec.name = "piped";
  auto summary = run(request);
  ::close(fds[1]);
  REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
  CHECK(summary->output_closed);
  CHECK(format_summary_line(*summary).starts_with("standard output was closed"));
  sql::Db db = testing::open_migrated(g.db);
  auto records = db.prepare("SELECT count(*) FROM export_records");
  REQUIRE(records.ok());
  REQUIRE(*records->step());
  CHECK(records->int64(0) == 0);  // nothing counts as delivered
}

TEST_CASE("the validation split is a stable function of the trace id") {
  Golden g;
  auto request = g.request("jsonl", "all.jsonl");
  request.spec.validation_fraction = 0.5;
  auto summary = run(request);
  REQUIRE(summary.ok());
  CHECK(summary->validation_path == g.dir.file("all.validation.jsonl"));
  auto train = lines_of(read_file(request.spec.out));
  auto validation = lines_of(read_file(summary->validation_path));
  CHECK(train.size() + validation.size() == 11);
  CHECK(summary->records == train.size());
  CHECK(summary->validation_records == validation.size());
  for (const auto& line : validation) {
    CHECK(in_validation_split(nlohmann::json::parse(line)["trace_id"], 0.5));
  }
  for (const auto& line : train) {
    CHECK_FALSE(in_validation_split(nlohmann::json::parse(line)["trace_id"], 0.5));
  }
  auto manifest = nlohmann::json::parse(read_file(summary->validation_manifest_path));
  CHECK(manifest["records"] == validation.size());
  CHECK(manifest["split"]["part"] == "validation");
  CHECK(manifest["sha256"] == Sha256::of(read_file(summary->validation_path)));
  // The split does not depend on the other traces: a fraction of 0 keeps everything in train
  // (refused as a request), a tiny one sends almost nothing to validation.
  CHECK(sibling_path("a/b.c/d", "x") == "a/b.c/d.x");
  CHECK(sibling_path("out.jsonl", "validation") == "out.validation.jsonl");
  request.spec.validation_fraction = 0;
  CHECK(run(request).status().kind() == ErrorKind::kConfig);
  request.spec.validation_fraction = 0.5;
  request.spec.out = "-";
  CHECK(run(request).status().kind() == ErrorKind::kConfig);
}

TEST_CASE("duplicates are counted and dropped on request; large records are skipped by size") {
  TempDir dir;
  const std::string db_path = dir.file("dups.db");
  {
    sql::Db db = testing::open_migrated(db_path);
    // insert_chat_record's questions differ by index; make two traces identical.
    testing::insert_chat_record(db, 1);
    testing::insert_chat_record(db, 2);
    REQUIRE(db.exec("UPDATE observations SET input_json = (SELECT input_json FROM observations"
                    " WHERE trace_id = 'bulk-000001') WHERE trace_id = 'bulk-000002'")
                .ok());
    testing::insert_chat_record(db, 3, std::string(5000, 'x'));
  }
  ExportRequest request;
  request.db_path = db_path;
  request.spec.format = "openai-chat";
  request.spec.out = dir.file("out.jsonl");
  auto kept = run(request);
  REQUIRE(kept.ok());
  CHECK(kept->records == 3);
  CHECK(kept->duplicates == 1);
  CHECK(kept->approx_tokens_max > 1250);
  request.spec.drop_duplicates = true;
  request.spec.max_record_bytes = 4096;
  auto dropped = run(request);
  REQUIRE(dropped.ok());
  CHECK(dropped->records == 1);
  CHECK(dropped->skipped_by_reason ==
        std::map<std::string, std::size_t>{{"duplicate", 1}, {"record_too_large", 1}});
  CHECK(format_summary_line(*dropped).find("1 duplicate record") != std::string::npos);
}

TEST_CASE("the score source is accepted in any case and checked") {
  Golden g;
  auto request = g.request("jsonl", "api.jsonl");
  request.spec.source = "api";
  auto summary = run(request);
  REQUIRE(summary.ok());
  CHECK(summary->records == 1);  // t13-api-source
  request.spec.source = "annotations";
  auto bad = run(request);
  CHECK(bad.status().kind() == ErrorKind::kConfig);
  CHECK(bad.status().message().find("ANNOTATION, API, EVAL") != std::string::npos);
}

}  // namespace lfh
