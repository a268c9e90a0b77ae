// Reliability 10: days of polling in seconds, with an injected clock.
//
// The real SyncEngine and CheckpointStore (a SQLite file in a temp folder) run against an
// in-memory Langfuse whose calls fail 1% of the time (503, 429 with Retry-After, malformed
// pages). New annotated traces trickle in, some annotations are edited or deleted, and the loop
// does what `lfharvest run` does: a pass every poll interval, then a WAL checkpoint. A FakeClock
// makes every sleep instant. At intervals it prints resident memory, open file descriptors and
// the WAL size, and at the end checks that
//   - resident memory grew by less than 10 MiB after the first simulated day (the warm-up),
//   - the number of open file descriptors never changed after the warm-up,
//   - the WAL never held more than 8 MiB and is empty after every checkpoint,
//   - nothing was lost: every live annotation is in the database and its trace fully fetched.
// Usage: lfharvest_soak [--days N] [--poll-seconds S] [--fault-rate F] [--seed N] [--verbose]
// The database goes to $LFHARVEST_SOAK_DIR, else /dev/shm when writable, else /tmp.
// Exit 0 when every check holds, 1 otherwise. Figures are printed as "FIGURE name = value".
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/random.h"
#include "core/time_format.h"
#include "http/circuit_breaker.h"
#include "langfuse/langfuse_api.h"
#include "store/checkpoint_store.h"
#include "sync/sync_engine.h"
#include "sync/sync_settings.h"

namespace fs = std::filesystem;

namespace lfh::soak {
namespace {

// An in-memory Langfuse with bounded bookkeeping (unlike the unit tests' fake it keeps no log of
// queries, so its own memory grows only with its data). Thread-safe.
class SoakLangfuse final : public LangfuseApi {
 public:
  SoakLangfuse(Clock& clock, std::uint64_t seed, double fault_rate)
      : clock_(clock), random_(seed), fault_rate_(fault_rate) {}

  std::string add_annotated_trace() {
    std::lock_guard lock(mu_);
    const int n = next_++;
    const SysTime now = clock_.now();
    std::string trace = fmt::format("trace-{:06d}", n);
    const int generations = 1 + n % 3;
    auto& list = observations_[trace];
    for (int g = 0; g <= generations; ++g) {
      Observation o;
      o.id = fmt::format("{}-obs-{}", trace, g);
      o.trace_id = trace;
      o.type = g == 0 ? "SPAN" : "GENERATION";
      if (g > 0) o.parent_observation_id = trace + "-obs-0";
      o.start_time = format_iso8601(now - std::chrono::seconds(300 - 10 * g));
      o.input_json = fmt::format(R"([{{"role":"user","content":"question {} {}"}}])", n, g);
      o.output_json = fmt::format(R"({{"role":"assistant","content":"answer {} {}"}})", n, g);
      list.push_back(std::move(o));
    }
    Score s;
    s.id = fmt::format("score-{:06d}", n);
    s.name = "quality";
    s.source = "ANNOTATION";
    s.data_type = "CATEGORICAL";
    s.string_value = n % 2 ? "Good" : "Bad";
    s.value_json = "\"" + *s.string_value + "\"";
    s.subject_kind = "trace";
    s.trace_id = trace;
    s.timestamp = format_iso8601(now - std::chrono::seconds(60));
    s.raw_json = "{}";
    scores_.push_back(std::move(s));
    return trace;
  }

  void edit_random_score() {
    std::lock_guard lock(mu_);
    if (scores_.empty()) return;
    Score& s = scores_[static_cast<std::size_t>(random_.uniform01() * scores_.size())];
    s.string_value = *s.string_value == "Good" ? "Bad" : "Good";
    s.value_json = "\"" + *s.string_value + "\"";
    ++edits_;
  }

  void delete_random_score() {
    std::lock_guard lock(mu_);
    if (scores_.size() < 10) return;
    scores_.erase(scores_.begin() +
                  static_cast<std::ptrdiff_t>(random_.uniform01() * scores_.size()));
    ++deletions_;
  }

  std::set<std::string> live_score_ids() const {
    std::lock_guard lock(mu_);
    std::set<std::string> ids;
    for (const auto& s : scores_) ids.insert(s.id);
    return ids;
  }
  std::size_t observation_count(const std::string& trace) const {
    std::lock_guard lock(mu_);
    auto it = observations_.find(trace);
    return it == observations_.end() ? 0 : it->second.size();
  }
  std::uint64_t calls() const { return calls_; }
  std::uint64_t faults() const { return faults_; }
  int edits() const { return edits_; }
  int deletions() const { return deletions_; }

  Result<ServerInfo> health(std::stop_token) override {
    std::lock_guard lock(mu_);
    if (auto f = fault()) return *f;
    return ServerInfo{"4.16.0", ApiGeneration::kCurrent};
  }
  Result<ProjectInfo> project(std::stop_token) override {
    std::lock_guard lock(mu_);
    if (auto f = fault()) return *f;
    return ProjectInfo{"proj-soak", "Soak"};
  }
  ApiGeneration generation() const override { return ApiGeneration::kCurrent; }
  void set_generation(ApiGeneration) override {}

  Result<ScorePage> scores(const ScoreQuery& q, std::stop_token) override {
    std::lock_guard lock(mu_);
    if (auto f = fault()) return *f;
    std::vector<const Score*> match;
    for (const auto& s : scores_) {
      if (q.from_timestamp && s.timestamp < *q.from_timestamp) continue;
      if (q.to_timestamp && s.timestamp >= *q.to_timestamp) continue;
      if (!q.ids.empty() && std::find(q.ids.begin(), q.ids.end(), s.id) == q.ids.end()) continue;
      match.push_back(&s);
    }
    std::sort(match.begin(), match.end(), [](const Score* a, const Score* b) {
      return a->timestamp != b->timestamp ? a->timestamp > b->timestamp : a->id > b->id;
    });
    const std::size_t offset = q.cursor ? std::stoul(*q.cursor) : 0;
    const std::size_t limit = static_cast<std::size_t>(std::max(1, q.limit));
    ScorePage page;
    for (std::size_t i = offset; i < match.size() && i < offset + limit; ++i) {
      page.scores.push_back(*match[i]);
    }
    if (offset + limit < match.size()) page.next_cursor = std::to_string(offset + limit);
    return page;
  }

  Result<ObservationPage> observations(const ObservationQuery& q, std::stop_token) override {
    std::lock_guard lock(mu_);
    if (auto f = fault()) return *f;
    ObservationPage page;
    auto it = observations_.find(q.trace_id);
    if (it == observations_.end()) return page;
    const std::size_t offset = q.cursor ? std::stoul(*q.cursor) : 0;
    const std::size_t limit = static_cast<std::size_t>(std::max(1, q.limit));
    const auto& list = it->second;  // oldest first; the API pages newest first
    for (std::size_t i = offset; i < list.size() && i < offset + limit; ++i) {
      page.observations.push_back(list[list.size() - 1 - i]);
    }
    if (offset + limit < list.size()) page.next_cursor = std::to_string(offset + limit);
    return page;
  }

 private:
  // 1% of calls fail: mostly 503, some 429 with Retry-After, some unreadable pages.
  std::optional<Status> fault() {
    ++calls_;
    if (random_.uniform01() >= fault_rate_) return std::nullopt;
    ++faults_;
    const double kind = random_.uniform01();
    if (kind < 0.6) return Status::Error(ErrorKind::kRetryable, "HTTP 503: Service Unavailable");
    if (kind < 0.8) {
      Status s = Status::Error(ErrorKind::kRateLimited, "HTTP 429: Rate limit exceeded");
      s.with_retry_after_ms(5000);
      return s;
    }
    return Status::Error(ErrorKind::kRetryable, "malformed response: unexpected end of input");
  }

  Clock& clock_;
  mutable std::mutex mu_;
  SeededRandom random_;
  double fault_rate_;
  std::vector<Score> scores_;
  std::map<std::string, std::vector<Observation>> observations_;
  int next_ = 0;
  int edits_ = 0;
  int deletions_ = 0;
  std::uint64_t calls_ = 0;
  std::uint64_t faults_ = 0;
};

long resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

int open_fds() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) ++n;
  return n - 1;  // the iterator's own descriptor
}

std::uintmax_t file_size_or_zero(const fs::path& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

struct Options {
  double days = 7;
  int poll_seconds = 60;
  double fault_rate = 0.01;
  std::uint64_t seed = 20261125;
  bool verbose = false;
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value after %s\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--days")
      o.days = std::stod(next());
    else if (arg == "--poll-seconds")
      o.poll_seconds = std::stoi(next());
    else if (arg == "--fault-rate")
      o.fault_rate = std::stod(next());
    else if (arg == "--seed")
      o.seed = std::stoull(next());
    else if (arg == "--verbose")
      o.verbose = true;
    else {
      std::fprintf(stderr,
                   "usage: lfharvest_soak [--days N] [--poll-seconds S] "
                   "[--fault-rate F] [--seed N] [--verbose]\n");
      std::exit(2);
    }
  }
  return o;
}

template <typename T>
void figure(const std::string& name, const T& value) {
  std::printf("FIGURE soak.%s = %s\n", name.c_str(), fmt::format("{}", value).c_str());
  std::fflush(stdout);
}

int run(const Options& options) {
  log::init(options.verbose ? log::Level::kInfo : log::Level::kOff);
  // /dev/shm when there is one: the WAL checkpoint after each pass fsyncs, and thousands of
  // fsyncs on a busy disk would measure the disk, not lfharvest.
  std::string base = "/tmp";
  if (const char* env = std::getenv("LFHARVEST_SOAK_DIR")) {
    base = env;
  } else if (::access("/dev/shm", W_OK) == 0) {
    base = "/dev/shm";
  }
  std::string folder_template = base + "/lfh-soak-XXXXXX";
  const char* folder = ::mkdtemp(folder_template.data());
  if (folder == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path dir(folder);
  const fs::path db = dir / "lfharvest.db";
  const fs::path wal = dir / "lfharvest.db-wal";
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};

  FakeClock clock;
  SeededRandom random(options.seed);
  SeededRandom world(options.seed + 1);  // what happens on the server
  SoakLangfuse api(clock, options.seed + 2, options.fault_rate);
  for (int i = 0; i < 200; ++i) api.add_annotated_trace();

  auto opened = CheckpointStore::open(db.string(), clock);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().message().c_str());
    return 1;
  }
  CheckpointStore& store = **opened;
  CircuitBreakerOptions breaker_options;
  breaker_options.failure_threshold = 5;
  breaker_options.probe_base = std::chrono::seconds(5);
  breaker_options.probe_cap = std::chrono::seconds(300);
  CircuitBreaker breaker(clock, breaker_options);
  SyncSettings settings;  // the defaults of config/lfharvest.toml
  settings.poll_interval = std::chrono::seconds(options.poll_seconds);
  settings.max_wait = settings.poll_interval;  // as `lfharvest run` sets it
  SyncEngine engine(api, api, store, breaker, clock, random, settings);

  std::stop_source stop;
  for (int attempt = 0;; ++attempt) {
    Status connected = engine.connect(stop.get_token());
    if (connected.ok()) break;
    if (attempt > 10) {
      std::fprintf(stderr, "connect: %s\n", connected.message().c_str());
      return 1;
    }
    clock.advance(std::chrono::seconds(5));
  }

  const auto started = std::chrono::steady_clock::now();
  const SysTime sim_start = clock.now();
  const auto total =
      std::chrono::duration_cast<Millis>(std::chrono::duration<double>(options.days * 86400.0));
  const Millis warm_up = std::min<Millis>(std::chrono::hours(24), total / 4);
  const Millis sample_every = std::chrono::hours(12);
  Millis next_sample{0};
  bool warmed = false;
  long rss_after_warm_up = 0, rss_max_after_warm_up = 0;
  int fds_after_warm_up = 0, fds_min = 1 << 30, fds_max = 0;
  std::uintmax_t wal_max = 0, wal_after_checkpoint_max = 0;
  std::map<std::string, int> outcomes;
  std::int64_t passes = 0, requests = 0, added = 0;

  std::printf("%-8s %-10s %-8s %-5s %-10s %-10s %-8s %s\n", "day", "passes", "RSS MiB", "fds",
              "WAL KiB", "DB KiB", "traces", "scores");
  for (;;) {
    const Millis elapsed = std::chrono::duration_cast<Millis>(clock.now() - sim_start);
    if (elapsed >= total) break;
    // The world: an annotation about every 10 minutes, an edit or a deletion now and then.
    const double per_poll = options.poll_seconds / 600.0;
    if (world.uniform01() < per_poll) {
      api.add_annotated_trace();
      ++added;
    }
    if (world.uniform01() < per_poll / 20) api.edit_random_score();
    if (world.uniform01() < per_poll / 40) api.delete_random_score();

    PassReport report = engine.run_pass(stop.get_token());
    static const char* kNames[] = {"complete", "waiting", "cancelled", "fatal"};
    ++outcomes[kNames[static_cast<int>(report.outcome)]];
    ++passes;
    requests += report.requests;
    if (report.outcome == PassReport::Outcome::kFatal &&
        (report.error.kind() == ErrorKind::kIo || report.error.kind() == ErrorKind::kCorrupt)) {
      std::fprintf(stderr, "database error: %s\n", report.error.message().c_str());
      return 1;
    }
    wal_max = std::max(wal_max, file_size_or_zero(wal));
    if (Status s = store.checkpoint_wal(); !s.ok()) {
      std::fprintf(stderr, "checkpoint: %s\n", s.message().c_str());
      return 1;
    }
    wal_after_checkpoint_max = std::max(wal_after_checkpoint_max, file_size_or_zero(wal));

    const long rss = resident_kib();
    const int fds = open_fds();
    if (!warmed && elapsed >= warm_up) {
      warmed = true;
      rss_after_warm_up = rss;
      fds_after_warm_up = fds;
    }
    if (warmed) {
      rss_max_after_warm_up = std::max(rss_max_after_warm_up, rss);
      fds_min = std::min(fds_min, fds);
      fds_max = std::max(fds_max, fds);
    }
    if (elapsed >= next_sample) {
      auto counts = store.trace_counts("proj-soak");
      auto live = store.live_score_count("proj-soak");
      std::printf("%-8.1f %-10lld %-8.1f %-5d %-10.1f %-10.1f %-8lld %lld\n",
                  elapsed.count() / 86'400'000.0, static_cast<long long>(passes), rss / 1024.0, fds,
                  file_size_or_zero(wal) / 1024.0, file_size_or_zero(db) / 1024.0,
                  static_cast<long long>(counts.ok() ? counts->total() : -1),
                  static_cast<long long>(live.ok() ? *live : -1));
      std::fflush(stdout);
      next_sample += sample_every;
    }
    // The service sleeps until the next poll (run_pass may already have advanced the clock).
    clock.advance(settings.poll_interval);
  }

  // One last pass without faults is not possible here (1% stays on), so give the engine a few
  // more passes to drain retries, then compare with the server.
  for (int i = 0; i < 30; ++i) {
    clock.advance(settings.poll_interval);
    (void)engine.run_pass(stop.get_token());
  }
  const auto live = api.live_score_ids();
  std::set<std::string> stored_live;
  std::size_t missing_observations = 0, traces_not_done = 0;
  {
    auto ids = store.live_score_ids("proj-soak", "", 1'000'000);
    if (ids.ok()) stored_live.insert(ids->begin(), ids->end());
  }
  std::vector<std::string> lost;
  std::set_difference(live.begin(), live.end(), stored_live.begin(), stored_live.end(),
                      std::back_inserter(lost));
  std::vector<std::string> not_deleted;
  std::set_difference(stored_live.begin(), stored_live.end(), live.begin(), live.end(),
                      std::back_inserter(not_deleted));
  auto counts = store.trace_counts("proj-soak");
  if (counts.ok()) traces_not_done = static_cast<std::size_t>(counts->pending + counts->retry);
  // Observations: compare per trace through the store's own database file.
  {
    auto reader = sql::Db::open(db.string(), sql::Db::Mode::kReadOnly);
    if (reader.ok()) {
      auto stmt = reader->prepare(
          "SELECT t.trace_id, count(o.observation_id) FROM traces t LEFT JOIN observations o "
          "USING (project_id, trace_id) WHERE t.state = 'done' GROUP BY t.trace_id");
      if (stmt.ok()) {
        for (;;) {
          auto row = stmt->step();
          if (!row.ok() || !*row) break;
          if (static_cast<std::size_t>(stmt->int64(1)) != api.observation_count(stmt->text(0))) {
            ++missing_observations;
          }
        }
      }
    }
  }

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double rss_growth_mib = (rss_max_after_warm_up - rss_after_warm_up) / 1024.0;
  figure("simulated_days", options.days);
  figure("passes", passes);
  figure("pass_outcomes", fmt::format("complete {}, waiting {}, fatal {}", outcomes["complete"],
                                      outcomes["waiting"], outcomes["fatal"]));
  figure("requests", requests);
  figure("server_calls",
         fmt::format("{} ({} failed on purpose, {:.2f}%)", api.calls(), api.faults(),
                     100.0 * api.faults() / std::max<std::uint64_t>(1, api.calls())));
  figure("annotations",
         fmt::format("{} added, {} edited, {} deleted", added + 200, api.edits(), api.deletions()));
  figure("rss_after_warm_up_mib", fmt::format("{:.1f}", rss_after_warm_up / 1024.0));
  figure("rss_growth_after_warm_up_mib", fmt::format("{:.1f}", rss_growth_mib));
  figure("open_fds_after_warm_up",
         fmt::format("{} (min {}, max {})", fds_after_warm_up, fds_min, fds_max));
  figure("wal_max_kib", fmt::format("{:.1f}", wal_max / 1024.0));
  figure("wal_after_checkpoint_max_kib", fmt::format("{:.1f}", wal_after_checkpoint_max / 1024.0));
  figure("lost", lost.size());
  figure("deletions_not_seen", not_deleted.size());
  figure("traces_waiting_at_end", traces_not_done);
  figure("done_traces_missing_observations", missing_observations);
  figure("seconds", fmt::format("{:.1f}", seconds));

  bool ok = true;
  auto check = [&](bool condition, const std::string& what) {
    if (!condition) {
      std::printf("FAILED: %s\n", what.c_str());
      ok = false;
    }
  };
  check(warmed, "the run ended before the warm-up");
  check(rss_growth_mib < 10.0, "resident memory grew by 10 MiB or more after the warm-up");
  check(fds_min == fds_after_warm_up && fds_max == fds_after_warm_up,
        "the number of open file descriptors changed after the warm-up");
  check(wal_max <= 8u << 20, "the WAL grew beyond 8 MiB");
  check(wal_after_checkpoint_max == 0, "the WAL was not empty after a checkpoint");
  check(lost.empty(), "live annotations missing from the database");
  check(missing_observations == 0, "done traces missing observations");
  check(outcomes["fatal"] * 100 <= passes, "more than 1% of passes ended fatally");
  std::printf("%s\n", ok ? "soak: ok" : "soak: FAILED");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace lfh::soak

int main(int argc, char** argv) {
  return lfh::soak::run(lfh::soak::parse_options(argc, argv));
}
