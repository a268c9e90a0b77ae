// Export throughput and memory: builds checkpoint databases in a temp folder, exports them in
// every format, prints records/s, MB/s (of output) and the peak RSS of the exporting process.
//
//   lfharvest_export_bench [records]      (default 100000)
//
// Each export runs in a child process of its own, so its peak RSS (getrusage ru_maxrss) is the
// export's and not the database build's. Figures go to docs/benchmarks.md, "## Export".
#include <fmt/format.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "export/exporter.h"
#include "store/schema.h"
#include "store/sqlite.h"

namespace lfh {
namespace {

void die(const std::string& what) {
  std::fprintf(stderr, "export_bench: %s\n", what.c_str());
  std::exit(1);
}

void check(const Status& s, const char* what) {
  if (!s.ok()) die(std::string(what) + ": " + s.to_string());
}

// A chat generation of about 1.5 KB, one in ten with a tool call; every trace has a CATEGORICAL
// "quality" score (newest) and a CORRECTION score, so every format has work to do.
void build_database(const std::string& path, int records, std::size_t big_output_bytes) {
  auto db = sql::Db::open(path, sql::Db::Mode::kReadWrite);
  check(db.status(), "open");
  check(migrate(*db), "migrate");
  auto trace = db->prepare(
      "INSERT INTO traces (project_id, trace_id, state, queued_at, fetched_at)"
      " VALUES ('bench', :t, 'done', '2026-01-10T00:00:00.000Z', '2026-01-10T00:00:01.000Z')");
  auto observation = db->prepare(
      "INSERT INTO observations (project_id, observation_id, trace_id, type, name, start_time,"
      " model, usage_json, input_json, output_json, attributes_json, fetched_at)"
      " VALUES ('bench', :id, :t, 'GENERATION', 'chat', '2026-01-10T10:00:00.000Z',"
      " 'gpt-4o-mini', '{\"input\":310,\"output\":95,\"total\":405}', :input, :output, '{}',"
      " '2026-01-10T00:00:01.000Z')");
  auto score = db->prepare(
      "INSERT INTO scores (project_id, score_id, name, source, data_type, value_json,"
      " string_value, subject_kind, trace_id, environment, timestamp, raw_json, first_seen_at,"
      " last_seen_at)"
      " VALUES ('bench', :id, :name, 'ANNOTATION', :type, :value, :string, 'trace', :t,"
      " 'production', :ts, '{}', :ts, :ts)");
  check(trace.status(), "prepare");
  check(observation.status(), "prepare");
  check(score.status(), "prepare");
  const std::string system_prompt =
      "You are a support assistant for an online shop. Answer briefly, cite the order number, "
      "and never promise refunds before the order is checked. " +
      std::string(200, '.');
  const std::string answer_text =
      "Your order has shipped and should arrive within three working days. You can follow it "
      "with the tracking link in the confirmation e-mail. " +
      std::string(150, '.');
  check(db->exec("BEGIN"), "begin");
  for (int i = 0; i < records; ++i) {
    const std::string t = fmt::format("trace-{:08d}", i);
    nlohmann::json input = {
        {"messages",
         {{{"role", "system"}, {"content", system_prompt}},
          {{"role", "user"},
           {"content", fmt::format("Where is my order {}? 我的订单在哪里？ 📦", 100000 + i)}}}}};
    nlohmann::json output;
    if (big_output_bytes > 0) {
      output = {{"role", "assistant"}, {"content", std::string(big_output_bytes, 'x')}};
    } else if (i % 10 == 0) {
      input["tools"] = nlohmann::json::parse(
          R"([{"type":"function","function":{"name":"track_order","parameters":)"
          R"({"type":"object","properties":{"order":{"type":"string"}}}}}])");
      output = nlohmann::json::parse(
          fmt::format(R"({{"role":"assistant","content":null,"tool_calls":[{{"id":"call_1",)"
                      R"("type":"function","function":{{"name":"track_order",)"
                      R"("arguments":"{{\"order\":\"{}\"}}"}}}}]}})",
                      100000 + i));
    } else {
      output = {{"choices",
                 {{{"index", 0},
                   {"message", {{"role", "assistant"}, {"content", answer_text}}},
                   {"finish_reason", "stop"}}}}};
    }
    check(trace->bind(":t", t).run(), "insert trace");
    check(observation->bind(":id", t + "-gen")
              .bind(":t", t)
              .bind(":input", input.dump())
              .bind(":output", output.dump())
              .run(),
          "insert observation");
    const bool good = i % 10 < 7;
    check(score->bind(":id", t + "-q")
              .bind(":name", "quality")
              .bind(":type", "CATEGORICAL")
              .bind(":value", good ? "\"Good\"" : "\"Bad\"")
              .bind(":string", good ? "Good" : "Bad")
              .bind(":t", t)
              .bind(":ts", "2026-01-10T12:00:00.000Z")
              .run(),
          "insert score");
    check(score->bind(":id", t + "-c")
              .bind(":name", "correction")
              .bind(":type", "CORRECTION")
              .bind(":value", "\"Your order is on its way.\"")
              .bind(":string", "Your order is on its way.")
              .bind(":t", t)
              .bind(":ts", "2026-01-10T11:00:00.000Z")
              .run(),
          "insert score");
  }
  check(db->exec("COMMIT"), "commit");
  check(db->exec("PRAGMA wal_checkpoint(TRUNCATE)"), "checkpoint");
}

struct Figures {
  std::size_t records = 0;
  std::size_t skipped = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;
  double cpu_seconds = 0;
  long peak_rss_kib = 0;
};

// Runs fn in a child process and returns what it wrote into the pipe.
template <typename Fn>
Figures in_child(Fn fn) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) die("pipe");
  const pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    ::close(pipe_fds[0]);
    Figures figures = fn();
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    figures.peak_rss_kib = usage.ru_maxrss;
    auto secs = [](const timeval& tv) {
      return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    figures.cpu_seconds = secs(usage.ru_utime) + secs(usage.ru_stime);
    if (::write(pipe_fds[1], &figures, sizeof figures) != sizeof figures) ::_exit(1);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  Figures figures;
  const bool got = ::read(pipe_fds[0], &figures, sizeof figures) == sizeof figures;
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("child failed");
  return figures;
}

Figures export_once(const std::string& db, const std::string& format, const std::string& out) {
  return in_child([&] {
    ExportRequest request;
    request.db_path = db;
    request.spec.format = format;
    request.spec.out = out;
    request.spec.positive = "Good";
    SystemClock clock;
    const auto start = std::chrono::steady_clock::now();
    auto summary = run_export(request, clock, {});
    if (!summary.ok()) die(summary.status().to_string());
    Figures f;
    f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    f.records = summary->records;
    f.skipped = summary->skipped();
    f.bytes = summary->bytes;
    return f;
  });
}

void print_row(const std::string& label, const Figures& f) {
  std::printf("| %-24s | %9zu | %7zu | %9.1f | %8.2f | %8.2f | %10.0f | %6.1f | %8.1f |\n",
              label.c_str(), f.records, f.skipped, static_cast<double>(f.bytes) / 1e6, f.seconds,
              f.cpu_seconds, static_cast<double>(f.records) / f.seconds,
              static_cast<double>(f.bytes) / 1e6 / f.seconds,
              static_cast<double>(f.peak_rss_kib) / 1024);
}

}  // namespace
}  // namespace lfh

int main(int argc, char** argv) {
  using namespace lfh;
  const int records = argc > 1 ? std::atoi(argv[1]) : 100000;
  if (records <= 0) die("records must be a positive number");
  std::string folder =
      (std::filesystem::temp_directory_path() / "lfh-export-bench-XXXXXX").string();
  if (!::mkdtemp(folder.data())) die("mkdtemp");
  log::init(log::Level::kWarn);

  const std::string small_db = folder + "/small.db";
  const std::string db = folder + "/bench.db";
  const std::string big_db = folder + "/big.db";
  const int small_records = std::max(1, records / 10);
  const int big_records = 40;
  const std::size_t big_bytes = 5u << 20;
  auto build = [](const std::string& path, int n, std::size_t big) {
    return in_child([&] {
      const auto start = std::chrono::steady_clock::now();
      build_database(path, n, big);
      Figures f;
      f.records = static_cast<std::size_t>(n);
      f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return f;
    });
  };
  const Figures built = build(db, records, 0);
  build(small_db, small_records, 0);
  build(big_db, big_records, big_bytes);
  std::printf("database: %d traces, %d scores, %.0f MB, built in %.1f s\n\n", records, 2 * records,
              static_cast<double>(std::filesystem::file_size(db)) / 1e6, built.seconds);

  std::printf("| %-24s | %9s | %7s | %9s | %8s | %8s | %10s | %6s | %8s |\n", "export", "records",
              "skipped", "output MB", "seconds", "CPU s", "records/s", "MB/s", "peak RSS MiB");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(26, '-').c_str(),
              std::string(11, '-').c_str(), std::string(9, '-').c_str(),
              std::string(11, '-').c_str(), std::string(10, '-').c_str(),
              std::string(10, '-').c_str(), std::string(12, '-').c_str(),
              std::string(8, '-').c_str(), std::string(10, '-').c_str());
  for (const char* format : {"json", "jsonl", "openai-chat", "openai-dpo", "kto", "sharegpt"}) {
    print_row(fmt::format("{} ({})", format, records),
              export_once(db, format, folder + "/out." + format));
  }
  print_row(fmt::format("jsonl ({})", small_records),
            export_once(small_db, "jsonl", folder + "/small.jsonl"));
  print_row(fmt::format("jsonl ({} x {} MiB)", big_records, big_bytes >> 20),
            export_once(big_db, "jsonl", folder + "/big.jsonl"));

  std::error_code ignored;
  std::filesystem::remove_all(folder, ignored);
  return 0;
}
