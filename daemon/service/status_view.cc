#include "service/status_view.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/time_format.h"
#include "service/service_counters.h"

namespace lfh {
namespace {

std::string human_bytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string or_never(const std::optional<std::string>& t) {
  return t.value_or("never");
}

ServiceCounters counters_of(const StatusSnapshot& s) {
  return s.service_json ? ServiceCounters::from_json(*s.service_json) : ServiceCounters{};
}

// Prometheus label values: escape backslash, double quote and newline.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string render_status_text(const StatusSnapshot& s) {
  std::string out;
  auto line = [&](const std::string& l) {
    out += l;
    out += '\n';
  };
  line(fmt::format("database      {} ({}, schema {})", s.db_path, human_bytes(s.db_bytes),
                   s.schema_version));
  if (s.projects.empty()) {
    line("projects      none yet (run `lfharvest sync`)");
  }
  for (const auto& p : s.projects) {
    line(fmt::format("project       {}{} at {}", p.id, p.name.empty() ? "" : " (" + p.name + ")",
                     p.base_url));
    line(fmt::format("server        Langfuse {}, {} API (last seen {})",
                     p.server_version.empty() ? "version unknown" : p.server_version,
                     p.api_generation, p.last_seen_at));
  }
  line(fmt::format("last poll     {}", or_never(s.last_successful_poll)));
  if (s.last_run) {
    line(
        fmt::format("last pass     {} -> {} ({}): {} scores seen, {} traces fetched, {} "
                    "requests",
                    s.last_run->started_at, or_never(s.last_run->finished_at),
                    s.last_run->outcome.value_or("running or interrupted"), s.last_run->scores_seen,
                    s.last_run->traces_fetched, s.last_run->requests));
  }
  line("");
  line("scores (live / deleted)");
  if (s.scores.empty()) line("  none");
  for (const auto& g : s.scores) {
    line(fmt::format("  {:<11} {:<24} {:>8} / {}", g.source, g.name, g.live, g.deleted));
  }
  line(fmt::format("  edits seen {}, deletions seen {}", s.edits_seen, s.deletions_seen));
  line("");
  line("traces");
  if (s.traces.empty()) line("  none");
  for (const auto& [project, t] : s.traces) {
    line(
        fmt::format("  done {}  pending {}  retry {}  failed {}  (settle re-fetch scheduled {}, "
                    "{} observations)",
                    t.done, t.pending, t.retry, t.failed, t.refetch_scheduled, t.observations));
    if (t.next_retry_at) line(fmt::format("  next retry at {}", *t.next_retry_at));
  }
  for (const auto& [reason, n] : s.failures_by_reason) {
    line(fmt::format("  failed: {} {}", n, reason));
  }
  for (const auto& f : s.failures) {
    line(fmt::format("    {} {}: {}", f.trace_id, f.reason, f.error));
  }
  line("");
  line("streams");
  for (const auto& st : s.streams) {
    line(fmt::format(
        "  {:<7} last completed {}{}; last pass {} requests, {} in total", st.stream,
        or_never(st.last_completed_at),
        st.pass_started_at ? " (a pass is in progress since " + *st.pass_started_at + ")" : "",
        st.last_requests, st.total_requests));
  }
  ServiceCounters c = counters_of(s);
  if (c.passes > 0) {
    line("");
    line(
        fmt::format("service       {} passes, breaker {} (opened {} times), {} rate-limited "
                    "answers, {} bytes received",
                    c.passes, c.breaker_state, c.breaker_opens, c.rate_limited, c.bytes_received));
  }
  if (s.server_safety || s.big_traces > 0) {
    const ServerSafety z = s.server_safety.value_or(ServerSafety{});
    line("");
    line(fmt::format(
        "server safety {} traces in flight allowed now, {}; largest response {} "
        "bytes; {} traces held as big; {} outages seen, {} of them crashes after a "
        "big response{}",
        z.effective_concurrency,
        z.effective_rate > 0 ? fmt::format("{:.3g} requests/s", z.effective_rate)
                             : std::string("rate not recorded"),
        std::max(z.largest_response, s.largest_big_page_bytes), s.big_traces, z.outages, z.crashes,
        z.careful ? " (careful: traces of unknown size go one at a time)" : ""));
  }
  if (!s.recent_events.empty()) {
    line("");
    line("recent problems");
    for (const auto& e : s.recent_events) {
      line(fmt::format("  {} {:<5} {} {}: {}", e.at, e.level, e.scope, e.subject, e.message));
    }
  }
  return out;
}

std::string render_status_json(const StatusSnapshot& s) {
  using nlohmann::json;
  json j;
  j["database"] = {{"path", s.db_path},
                   {"bytes", s.db_bytes},
                   {"wal_bytes", s.wal_bytes},
                   {"schema_version", s.schema_version}};
  j["projects"] = json::array();
  for (const auto& p : s.projects) {
    j["projects"].push_back({{"id", p.id},
                             {"name", p.name},
                             {"base_url", p.base_url},
                             {"server_version", p.server_version},
                             {"api_generation", p.api_generation},
                             {"last_seen_at", p.last_seen_at}});
  }
  j["last_successful_poll"] = s.last_successful_poll ? json(*s.last_successful_poll) : json();
  j["scores"] = json::array();
  for (const auto& g : s.scores) {
    j["scores"].push_back({{"project", g.project},
                           {"source", g.source},
                           {"name", g.name},
                           {"live", g.live},
                           {"deleted", g.deleted}});
  }
  j["edits_seen"] = s.edits_seen;
  j["deletions_seen"] = s.deletions_seen;
  j["traces"] = json::object();
  for (const auto& [project, t] : s.traces) {
    j["traces"][project] = {{"pending", t.pending},
                            {"retry", t.retry},
                            {"done", t.done},
                            {"failed", t.failed},
                            {"refetch_scheduled", t.refetch_scheduled},
                            {"observations", t.observations},
                            {"next_retry_at", t.next_retry_at ? json(*t.next_retry_at) : json()}};
  }
  j["failures_by_reason"] = s.failures_by_reason;
  j["failures"] = json::array();
  for (const auto& f : s.failures) {
    j["failures"].push_back({{"project", f.project},
                             {"trace_id", f.trace_id},
                             {"reason", f.reason},
                             {"error", f.error}});
  }
  j["streams"] = json::array();
  for (const auto& st : s.streams) {
    j["streams"].push_back(
        {{"project", st.project},
         {"stream", st.stream},
         {"watermark", st.watermark ? json(*st.watermark) : json()},
         {"last_completed_at", st.last_completed_at ? json(*st.last_completed_at) : json()},
         {"in_progress_since", st.pass_started_at ? json(*st.pass_started_at) : json()},
         {"last_requests", st.last_requests},
         {"total_requests", st.total_requests}});
  }
  if (s.last_run) {
    j["last_pass"] = {
        {"started_at", s.last_run->started_at},
        {"finished_at", s.last_run->finished_at ? json(*s.last_run->finished_at) : json()},
        {"outcome", s.last_run->outcome ? json(*s.last_run->outcome) : json()},
        {"scores_seen", s.last_run->scores_seen},
        {"traces_fetched", s.last_run->traces_fetched},
        {"requests", s.last_run->requests}};
  }
  j["recent_problems"] = json::array();
  for (const auto& e : s.recent_events) {
    j["recent_problems"].push_back({{"at", e.at},
                                    {"level", e.level},
                                    {"scope", e.scope},
                                    {"subject", e.subject},
                                    {"message", e.message}});
  }
  if (s.service_json) {
    j["service"] = json::parse(*s.service_json, nullptr, false);
  }
  {
    const ServerSafety z = s.server_safety.value_or(ServerSafety{});
    j["server_safety"] = {
        {"effective_concurrency", z.effective_concurrency},
        {"effective_rate_per_second", z.effective_rate},
        {"largest_response_bytes", std::max(z.largest_response, s.largest_big_page_bytes)},
        {"big_traces", s.big_traces},
        {"outages_seen", z.outages},
        {"crashes_seen", z.crashes},
        {"careful", z.careful},
        {"updated_at", z.updated_at.empty() ? json() : json(z.updated_at)}};
  }
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string render_prometheus(const StatusSnapshot& s) {
  std::string out;
  auto help = [&](const char* name, const char* type, const char* text) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, text, name, type);
  };
  help("lfharvest_traces", "gauge", "Traces in the fetch queue by state.");
  for (const auto& [project, t] : s.traces) {
    const std::pair<const char*, int64_t> states[] = {
        {"pending", t.pending}, {"retry", t.retry}, {"done", t.done}, {"failed", t.failed}};
    for (const auto& [state, n] : states) {
      out += fmt::format("lfharvest_traces{{project=\"{}\",state=\"{}\"}} {}\n", label(project),
                         state, n);
    }
  }
  help("lfharvest_scores", "gauge", "Live scores in the cache by source and name.");
  for (const auto& g : s.scores) {
    out += fmt::format("lfharvest_scores{{project=\"{}\",source=\"{}\",name=\"{}\"}} {}\n",
                       label(g.project), label(g.source), label(g.name), g.live);
  }
  help("lfharvest_score_edits_seen_total", "counter", "Score edits detected by re-scans.");
  out += fmt::format("lfharvest_score_edits_seen_total {}\n", s.edits_seen);
  help("lfharvest_score_deletions_seen_total", "counter", "Score deletions detected by sweeps.");
  out += fmt::format("lfharvest_score_deletions_seen_total {}\n", s.deletions_seen);
  help("lfharvest_last_successful_poll_timestamp_seconds", "gauge",
       "Unix time of the last completed score poll.");
  double last_poll = 0;
  if (s.last_successful_poll) {
    if (auto t = parse_iso8601(*s.last_successful_poll)) {
      last_poll = std::chrono::duration<double>(t->time_since_epoch()).count();
    }
  }
  out += fmt::format("lfharvest_last_successful_poll_timestamp_seconds {:.3f}\n", last_poll);
  help("lfharvest_database_bytes", "gauge", "Size of the database file and its WAL.");
  out += fmt::format("lfharvest_database_bytes {}\n", s.db_bytes);
  help("lfharvest_wal_bytes", "gauge", "Size of the write-ahead log.");
  out += fmt::format("lfharvest_wal_bytes {}\n", s.wal_bytes);

  ServiceCounters c = counters_of(s);
  help("lfharvest_requests_total", "counter", "HTTP requests by endpoint and status class.");
  for (const auto& [endpoint, classes] : c.requests) {
    for (const auto& [cls, n] : classes) {
      out += fmt::format("lfharvest_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n",
                         label(endpoint), label(cls), n);
    }
  }
  help("lfharvest_retries_scheduled_total", "counter", "Trace fetches scheduled for a retry.");
  out += fmt::format("lfharvest_retries_scheduled_total {}\n", c.retries_scheduled);
  help("lfharvest_throttle_waits_total", "counter", "Requests that waited for the request budget.");
  out += fmt::format("lfharvest_throttle_waits_total {}\n", c.throttle_waits);
  help("lfharvest_throttle_wait_seconds_total", "counter", "Time spent waiting for the budget.");
  out += fmt::format("lfharvest_throttle_wait_seconds_total {:.3f}\n", c.throttle_wait_seconds);
  help("lfharvest_rate_limited_total", "counter", "429 answers from the server.");
  out += fmt::format("lfharvest_rate_limited_total {}\n", c.rate_limited);
  help("lfharvest_breaker_opens_total", "counter", "Times the circuit breaker opened.");
  out += fmt::format("lfharvest_breaker_opens_total {}\n", c.breaker_opens);
  help("lfharvest_breaker_open", "gauge", "1 while the circuit breaker is open.");
  out += fmt::format("lfharvest_breaker_open {}\n", c.breaker_state == "open" ? 1 : 0);
  help("lfharvest_received_bytes_total", "counter", "Response body bytes received.");
  out += fmt::format("lfharvest_received_bytes_total {}\n", c.bytes_received);
  help("lfharvest_passes_total", "counter", "Sync passes run by the service.");
  out += fmt::format("lfharvest_passes_total {}\n", c.passes);
  const ServerSafety z = s.server_safety.value_or(ServerSafety{});
  help("lfharvest_effective_concurrency", "gauge",
       "Traces in flight the adaptive limit allows now (1..max_in_flight).");
  out += fmt::format("lfharvest_effective_concurrency {}\n", z.effective_concurrency);
  help("lfharvest_effective_rate_requests_per_second", "gauge",
       "Request rate the adaptive limit allows now (0: not recorded).");
  out += fmt::format("lfharvest_effective_rate_requests_per_second {:.6g}\n", z.effective_rate);
  help("lfharvest_largest_response_bytes", "gauge", "Largest observation response seen.");
  out += fmt::format("lfharvest_largest_response_bytes {}\n",
                     std::max(z.largest_response, s.largest_big_page_bytes));
  help("lfharvest_big_traces", "gauge",
       "Traces held as big (fetched with nothing else in flight).");
  out += fmt::format("lfharvest_big_traces {}\n", s.big_traces);
  help("lfharvest_server_outages_total", "counter", "Bursts of server failures seen.");
  out += fmt::format("lfharvest_server_outages_total {}\n", z.outages);
  help("lfharvest_server_crashes_total", "counter",
       "Outages that began with a big response in flight (a server out of memory).");
  out += fmt::format("lfharvest_server_crashes_total {}\n", z.crashes);
  return out;
}

}  // namespace lfh
