#include "config/config.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace lfh {
namespace {

namespace fs = std::filesystem;

constexpr char kCanary[] = "sk-lf-CANARY-7d1e0c5b-secret";
constexpr char kPublicKey[] = "pk-lf-1234";

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "lfharvest-config-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }

  // Writes name with the given permission bits (applied after creation, so umask cannot widen
  // or narrow them) and returns its path.
  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) const {
    std::string path = file(name);
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << content;
    }
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    return path;
  }

 private:
  fs::path path_;
};

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// Options that never look at /etc and need no secret, unless a test says otherwise.
LoadOptions offline(const TempDir& dir) {
  LoadOptions options;
  options.need_secret = false;
  options.default_config_path = dir.file("absent.toml");
  return options;
}

Result<Config> load_text(const TempDir& dir, const std::string& toml,
                         std::map<std::string, std::string> env = {}) {
  ConfigOverrides overrides;
  overrides.config_path = dir.write("lfharvest.toml", toml, 0644);
  return load_config(overrides, env_of(std::move(env)), offline(dir));
}

// The error message a config text gives; fails the test when it loads.
std::string error_of(const TempDir& dir, const std::string& toml) {
  Result<Config> config = load_text(dir, toml);
  REQUIRE_MESSAGE(!config.ok(), "expected an error for:\n" << toml);
  CHECK(config.status().kind() == ErrorKind::kConfig);
  return config.status().message();
}

bool has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string example_path() {
  return (fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path() / "config" /
          "lfharvest.toml")
      .string();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// "key = value" with a lower-case identifier as key: how a setting line looks in the example.
bool is_setting_line(std::string_view line) {
  std::size_t end = 0;
  while (end < line.size() &&
         (std::islower(static_cast<unsigned char>(line[end])) || line[end] == '_')) {
    ++end;
  }
  return end > 0 && line.substr(end).starts_with(" = ");
}

// The example with every commented-out setting ("# key = value") and "# [[export]]" header
// turned on.
std::string uncomment_example(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  std::string line;
  while (std::getline(in, line)) {
    std::string_view view(line);
    if (view.starts_with("# ") && (is_setting_line(view.substr(2)) || view == "# [[export]]")) {
      view.remove_prefix(2);
    }
    out.append(view);
    out += '\n';
  }
  return out;
}

// Dotted keys ("limits.max_in_flight", "export.name") that a TOML text sets, read line by line:
// enough for the flat layout of the example file.
std::set<std::string> keys_set_in(const std::string& text) {
  std::set<std::string> keys;
  std::istringstream in(text);
  std::string line;
  std::string section;
  while (std::getline(in, line)) {
    if (line.starts_with("[") && line.ends_with("]")) {
      section = line.substr(line.find_first_not_of('['));
      section = section.substr(0, section.find(']'));
    } else if (is_setting_line(line)) {
      keys.insert(section + "." + line.substr(0, line.find(' ')));
    }
  }
  return keys;
}

}  // namespace

TEST_CASE("without a file or environment every setting has its default") {
  TempDir dir;
  Result<Config> loaded = load_config({}, env_of({}), offline(dir));
  REQUIRE(loaded.ok());
  const Config& c = *loaded;
  const Config defaults;
  CHECK(c.config_path.empty());
  CHECK(c.base_url == "http://127.0.0.1:3000");
  CHECK(c.public_key.empty());
  CHECK(c.secret_key.empty());
  CHECK(c.secret_source.empty());
  CHECK(c.api == "auto");
  CHECK(c.ca_file.empty());
  CHECK_FALSE(c.allow_insecure_http);
  CHECK(c.sources == std::vector<std::string>{"ANNOTATION"});
  CHECK(c.score_names.empty());
  CHECK(c.environments.empty());
  CHECK(c.overlap == Seconds(900));
  CHECK_FALSE(c.since.has_value());
  CHECK(c.poll_interval == Seconds(60));
  CHECK(c.max_wait == Seconds(60));
  CHECK(c.requests_per_second == 5.0);
  CHECK_FALSE(c.requests_per_minute.has_value());
  CHECK(c.max_in_flight == 2);
  CHECK(c.score_page_size == 100);
  CHECK(c.observation_page_size == 10);
  CHECK(c.max_response_bytes == 64u * 1024 * 1024);
  CHECK(c.connect_timeout == Seconds(10));
  CHECK(c.request_timeout == Seconds(300));
  CHECK(c.low_speed_bytes_per_second == 1024);
  CHECK(c.low_speed_time == Seconds(30));
  CHECK(c.backoff_base == std::chrono::milliseconds(1000));
  CHECK(c.backoff_cap == Seconds(600));
  CHECK(c.max_attempts == 10);
  CHECK(c.breaker_failures == 5);
  CHECK(c.breaker_probe_base == Seconds(5));
  CHECK(c.breaker_probe_cap == Seconds(300));
  CHECK(c.rescan_interval == defaults.rescan_interval);
  CHECK(c.rescan_window == defaults.rescan_window);
  CHECK(c.sweep_interval == defaults.sweep_interval);
  CHECK(c.settle_time == defaults.settle_time);
  CHECK(c.maintenance_share == 0.2);
  CHECK(c.database == "./lfharvest.db");
  CHECK(c.log_level == log::Level::kInfo);
  CHECK(c.metrics_textfile.empty());
  CHECK(c.exports.empty());
}

TEST_CASE("the database defaults to $STATE_DIRECTORY under systemd") {
  TempDir dir;
  auto database_with = [&](const std::string& state) {
    Result<Config> c = load_config({}, env_of({{"STATE_DIRECTORY", state}}), offline(dir));
    REQUIRE(c.ok());
    return c->database;
  };
  CHECK(database_with("/var/lib/lfharvest") == "/var/lib/lfharvest/lfharvest.db");
  CHECK(database_with("/var/lib/lfharvest/") == "/var/lib/lfharvest/lfharvest.db");
  CHECK(database_with("/var/lib/lfharvest:/var/lib/other") == "/var/lib/lfharvest/lfharvest.db");
  CHECK(database_with("") == "./lfharvest.db");
}

TEST_CASE("the default config file is read only when it exists; --config must exist") {
  TempDir dir;
  LoadOptions options = offline(dir);
  options.default_config_path = dir.write("default.toml", "[limits]\nmax_in_flight = 3\n", 0644);
  Result<Config> with_default = load_config({}, env_of({}), options);
  REQUIRE(with_default.ok());
  CHECK(with_default->max_in_flight == 3);
  CHECK(with_default->config_path == options.default_config_path);

  ConfigOverrides missing;
  missing.config_path = dir.file("nope.toml");
  Result<Config> failed = load_config(missing, env_of({}), options);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.status().kind() == ErrorKind::kConfig);
  CHECK(failed.status().message() ==
        "command line: --config: " + dir.file("nope.toml") + ": No such file or directory");
}

TEST_CASE("every file setting is read, with its unit") {
  TempDir dir;
  std::string ca = dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
  Result<Config> loaded = load_text(dir, R"(
[langfuse]
base_url = "https://langfuse.example.com/prefix/"
public_key = "pk-lf-abc"
api = "legacy"
ca_file = ")" + ca + R"("
allow_insecure_http = true

[harvest]
sources = ["ANNOTATION", "EVAL"]
score_names = ["quality", "helpfulness"]
environments = ["production"]
overlap_minutes = 20
since = 2024-05-01T14:00:00+02:00

[sync]
poll_interval_seconds = 120
max_wait_seconds = 0

[limits]
requests_per_second = 2.5
requests_per_minute = 25
max_in_flight = 4
score_page_size = 50
observation_page_size = 1000
max_response_mib = 8
connect_timeout_seconds = 5
request_timeout_seconds = 60
low_speed_bytes_per_second = 0
low_speed_time_seconds = 10

[retry]
backoff_base_ms = 250
backoff_cap_seconds = 30
max_attempts = 3
breaker_failures = 7
breaker_probe_base_seconds = 2
breaker_probe_cap_seconds = 60

[maintenance]
rescan_interval_minutes = 30
rescan_window_days = 2
sweep_interval_hours = 12
settle_minutes = 0
budget_share = 0

[store]
database = "/srv/lfh.db"

[log]
level = "debug"

[metrics]
textfile = "/var/lib/prometheus/node-exporter/lfharvest.prom"

[[export]]
name = "good-chat"
format = "openai-chat"
out = "-"
names = ["quality"]
values = ["Good", 1, 0.5, true]
source = "API"
min = -1
max = 2.5
since = "2024-01-01"
until = 2024-02-01
environments = ["staging"]
pick = "root"
incremental = true

[[export]]
name = "kto"
format = "kto"
out = "kto.jsonl"
positive = true
)");
  REQUIRE_MESSAGE(loaded.ok(), loaded.status().message());
  const Config& c = *loaded;
  CHECK(c.base_url == "https://langfuse.example.com/prefix");
  CHECK(c.public_key == "pk-lf-abc");
  CHECK(c.api == "legacy");
  CHECK(c.ca_file == ca);
  CHECK(c.allow_insecure_http);
  CHECK(c.sources == std::vector<std::string>{"ANNOTATION", "EVAL"});
  CHECK(c.score_names == std::vector<std::string>{"quality", "helpfulness"});
  CHECK(c.environments == std::vector<std::string>{"production"});
  CHECK(c.overlap == Seconds(20 * 60));
  CHECK(c.since == "2024-05-01T12:00:00.000Z");
  CHECK(c.poll_interval == Seconds(120));
  CHECK(c.max_wait == Seconds(0));
  CHECK(c.requests_per_second == 2.5);
  CHECK(c.requests_per_minute == 25.0);
  CHECK(c.max_in_flight == 4);
  CHECK(c.score_page_size == 50);
  CHECK(c.observation_page_size == 1000);
  CHECK(c.max_response_bytes == 8u * 1024 * 1024);
  CHECK(c.connect_timeout == Seconds(5));
  CHECK(c.request_timeout == Seconds(60));
  CHECK(c.low_speed_bytes_per_second == 0);
  CHECK(c.low_speed_time == Seconds(10));
  CHECK(c.backoff_base == std::chrono::milliseconds(250));
  CHECK(c.backoff_cap == Seconds(30));
  CHECK(c.max_attempts == 3);
  CHECK(c.breaker_failures == 7);
  CHECK(c.breaker_probe_base == Seconds(2));
  CHECK(c.breaker_probe_cap == Seconds(60));
  CHECK(c.rescan_interval == Seconds(30 * 60));
  CHECK(c.rescan_window == Seconds(2 * 24 * 3600));
  CHECK(c.sweep_interval == Seconds(12 * 3600));
  CHECK(c.settle_time == Seconds(0));
  CHECK(c.maintenance_share == 0.0);
  CHECK(c.database == "/srv/lfh.db");
  CHECK(c.log_level == log::Level::kDebug);
  CHECK(c.metrics_textfile == "/var/lib/prometheus/node-exporter/lfharvest.prom");

  REQUIRE(c.exports.size() == 2);
  const ExportSpec& e = c.exports[0];
  CHECK(e.name == "good-chat");
  CHECK(e.format == "openai-chat");
  CHECK(e.out == "-");
  CHECK(e.score_names == std::vector<std::string>{"quality"});
  CHECK(e.values == std::vector<std::string>{"Good", "1", "0.5", "true"});
  CHECK(e.source == "API");
  CHECK(e.min == -1.0);
  CHECK(e.max == 2.5);
  CHECK(e.since == "2024-01-01T00:00:00.000Z");
  CHECK(e.until == "2024-02-01T00:00:00.000Z");
  CHECK(e.environments == std::vector<std::string>{"staging"});
  CHECK(e.pick == "root");
  CHECK_FALSE(e.positive.has_value());
  CHECK(e.incremental);
  const ExportSpec& kto = c.exports[1];
  CHECK(kto.source == "ANNOTATION");
  CHECK(kto.pick == "last-generation");
  CHECK(kto.positive == "true");
  CHECK_FALSE(kto.incremental);
}

TEST_CASE("flag beats environment beats file beats default") {
  TempDir dir;
  std::string secret_from_file = dir.write("file-secret", "sk-lf-from-file\n");
  std::string secret_from_env = dir.write("env-secret", "sk-lf-from-env\n");
  std::string file_path = dir.write("lfharvest.toml", R"(
[langfuse]
base_url = "https://file.example"
public_key = "pk-lf-file"
secret_key_file = ")" + secret_from_file + R"("
[store]
database = "/file.db"
[log]
level = "warn"
)",
                                    0644);
  ConfigOverrides file_only;
  file_only.config_path = file_path;
  LoadOptions options = offline(dir);
  options.need_secret = true;

  std::map<std::string, std::string> env = {{"LANGFUSE_BASE_URL", "https://env.example"},
                                            {"LANGFUSE_PUBLIC_KEY", "pk-lf-env"},
                                            {"LFHARVEST_DB", "/env.db"},
                                            {"LFHARVEST_LOG_LEVEL", "error"},
                                            {"LFHARVEST_SECRET_KEY_FILE", secret_from_env}};

  SUBCASE("file over defaults") {
    Result<Config> c = load_config(file_only, env_of({}), options);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    CHECK(c->base_url == "https://file.example");
    CHECK(c->public_key == "pk-lf-file");
    CHECK(c->database == "/file.db");
    CHECK(c->log_level == log::Level::kWarn);
    CHECK(c->secret_key == "sk-lf-from-file");
    CHECK(c->secret_source == "file " + secret_from_file);
  }
  SUBCASE("environment over file") {
    Result<Config> c = load_config(file_only, env_of(env), options);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    CHECK(c->base_url == "https://env.example");
    CHECK(c->public_key == "pk-lf-env");
    CHECK(c->database == "/env.db");
    CHECK(c->log_level == log::Level::kError);
    CHECK(c->secret_key == "sk-lf-from-env");
    CHECK(c->secret_source == "file " + secret_from_env);
  }
  SUBCASE("flags over environment") {
    ConfigOverrides flags = file_only;
    flags.base_url = "https://flag.example/";
    flags.database = "/flag.db";
    flags.log_level = "trace";
    Result<Config> c = load_config(flags, env_of(env), options);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    CHECK(c->base_url == "https://flag.example");
    CHECK(c->database == "/flag.db");
    CHECK(c->log_level == log::Level::kTrace);
  }
  SUBCASE("an empty variable counts as unset") {
    Result<Config> c =
        load_config(file_only, env_of({{"LANGFUSE_BASE_URL", ""}, {"LFHARVEST_DB", ""}}), options);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    CHECK(c->base_url == "https://file.example");
    CHECK(c->database == "/file.db");
  }
}

TEST_CASE("LANGFUSE_HOST is accepted and LANGFUSE_BASE_URL wins over it") {
  TempDir dir;
  Result<Config> host_only =
      load_config({}, env_of({{"LANGFUSE_HOST", "https://host.example"}}), offline(dir));
  REQUIRE(host_only.ok());
  CHECK(host_only->base_url == "https://host.example");
  Result<Config> both = load_config({},
                                    env_of({{"LANGFUSE_HOST", "https://host.example"},
                                            {"LANGFUSE_BASE_URL", "https://base.example"}}),
                                    offline(dir));
  REQUIRE(both.ok());
  CHECK(both->base_url == "https://base.example");
}

TEST_CASE("file errors name the file, the full key and the reason") {
  TempDir dir;
  std::string file = dir.file("lfharvest.toml");
  struct Case {
    std::string toml;
    std::string expected;  // the message after "<file>: "
  };
  const Case cases[] = {
      // unknown keys and sections
      {"[limits]\nmax_inflight = 2\n",
       "limits.max_inflight: unknown key (did you mean max_in_flight?)"},
      {"[sync]\nmax_in_flight = 2\n", "sync.max_in_flight: unknown key (it belongs in [limits])"},
      {"[limit]\nmax_in_flight = 2\n", "limit: unknown section or key (did you mean limits?)"},
      {"base_url = \"https://x\"\n", "base_url: unknown section or key (it belongs in [langfuse])"},
      {"[[export]]\nname = \"a\"\nformat = \"json\"\nout = \"-\"\n"
       "[[export]]\nname = \"b\"\nformat = \"json\"\nout = \"-\"\ncolour = \"red\"\n",
       "export[1].colour: unknown key"},
      // wrong types
      {"[limits]\nmax_in_flight = \"2\"\n",
       "limits.max_in_flight: must be an integer (got a string)"},
      {"[limits]\nmax_in_flight = 2.5\n", "limits.max_in_flight: must be an integer (got a float)"},
      {"[limits]\nrequests_per_second = \"fast\"\n",
       "limits.requests_per_second: must be a number (got a string)"},
      {"[langfuse]\nallow_insecure_http = \"yes\"\n",
       "langfuse.allow_insecure_http: must be true or false (got a string)"},
      {"[harvest]\nsources = \"ANNOTATION\"\n",
       "harvest.sources: must be an array of strings (got a string)"},
      {"[harvest]\nscore_names = [\"a\", 3]\n",
       "harvest.score_names[1]: must be a string (got an integer)"},
      {"langfuse = 3\n", "langfuse: must be a table, written [langfuse] (got an integer)"},
      {"[export]\nname = \"a\"\n",
       "export: must be a list of tables, each written [[export]] (not [export])"},
      // out of range
      {"[limits]\nmax_in_flight = 0\n", "limits.max_in_flight: must be between 1 and 64 (got 0)"},
      {"[limits]\nmax_in_flight = 65\n", "limits.max_in_flight: must be between 1 and 64 (got 65)"},
      {"[limits]\nrequests_per_second = 0\n",
       "limits.requests_per_second: must be more than 0 and at most 1000 (got 0)"},
      {"[limits]\nrequests_per_second = 1000.5\n",
       "limits.requests_per_second: must be more than 0 and at most 1000 (got 1000.5)"},
      {"[limits]\nrequests_per_minute = inf\n",
       "limits.requests_per_minute: must be a finite number"},
      {"[limits]\nscore_page_size = 101\n",
       "limits.score_page_size: must be between 1 and 100 (got 101)"},
      {"[limits]\nobservation_page_size = 0\n",
       "limits.observation_page_size: must be between 1 and 1000 (got 0)"},
      {"[maintenance]\nbudget_share = 1.5\n",
       "maintenance.budget_share: must be at least 0 and at most 1 (got 1.5)"},
      {"[limits]\nconnect_timeout_seconds = 60\nrequest_timeout_seconds = 30\n",
       "limits.request_timeout_seconds: must be at least limits.connect_timeout_seconds (60 s): "
       "the request timeout includes the connect"},
      {"[retry]\nbackoff_base_ms = 5000\nbackoff_cap_seconds = 2\n",
       "retry.backoff_cap_seconds: must not be less than retry.backoff_base_ms (5000 ms)"},
      {"[retry]\nbreaker_probe_base_seconds = 60\nbreaker_probe_cap_seconds = 30\n",
       "retry.breaker_probe_cap_seconds: must not be less than retry.breaker_probe_base_seconds "
       "(60 s)"},
      // bad enums
      {"[langfuse]\napi = \"v5\"\n",
       "langfuse.api: must be one of auto, current, legacy (got \"v5\")"},
      {"[harvest]\nsources = [\"ANNOTATION\", \"HUMAN\"]\n",
       "harvest.sources[1]: must be one of ANNOTATION, API, EVAL (got \"HUMAN\")"},
      {"[harvest]\nsources = []\n",
       "harvest.sources: must list at least one source; must be one of ANNOTATION, API, EVAL"},
      {"[log]\nlevel = \"loud\"\n",
       "log.level: must be one of trace, debug, info, warn, error, off (got \"loud\")"},
      {"[[export]]\nname = \"a\"\nformat = \"csv\"\nout = \"-\"\n",
       "export[0].format: must be one of json, jsonl, openai-chat, openai-dpo, kto, sharegpt, "
       "trl-dpo (got \"csv\")"},
      {"[[export]]\nname = \"a\"\nformat = \"json\"\nout = \"-\"\npick = \"first\"\n",
       "export[0].pick: must be one of last-generation, all-generations, root (got \"first\")"},
      {"[[export]]\nname = \"a\"\nformat = \"json\"\nout = \"-\"\nsource = \"annotations\"\n",
       "export[0].source: must be one of ANNOTATION, API, EVAL, in any case (got \"annotations\")"},
      // exports
      {"[[export]]\nname = \"a\"\nformat = \"json\"\nout = \"-\"\n"
       "[[export]]\nname = \"a\"\nformat = \"kto\"\nout = \"x\"\n",
       "export[1].name: duplicate export name \"a\" (also export[0])"},
      {"[[export]]\nname = \"a\"\nformat = \"json\"\n",
       "export[0].out: is required in every [[export]] table"},
      {"[[export]]\nname = \"a b\"\nformat = \"json\"\nout = \"-\"\n",
       "export[0].name: may contain only letters, digits, '-', '_' and '.' (got \"a b\")"},
      {"[[export]]\nname = \"a\"\nformat = \"json\"\nout = \"-\"\nmin = 2\nmax = 1\n",
       "export[0].max: must not be less than export[0].min (2)"},
      {"[[export]]\nname = \"a\"\nformat = \"json\"\nout = \"-\"\nsince = \"2024-02-01\"\n"
       "until = \"2024-01-01\"\n",
       "export[0].until: must be later than export[0].since (2024-02-01T00:00:00.000Z)"},
      {"[[export]]\nname = \"a\"\nformat = \"json\"\nout = \"-\"\npositive = \"Good\"\n",
       "export[0].positive: only applies to format \"kto\" (this export's format is \"json\")"},
      {"[[export]]\nname = \"a\"\nformat = \"json\"\nout = \"-\"\nvalues = [[1]]\n",
       "export[0].values[0]: must be a string, a number or a boolean (got an array)"},
      {"[harvest]\nnames = [\"a\"]\nscore_names = [\"b\"]\n",
       "harvest.names: is an alias of harvest.score_names; set only one of them"},
      // timestamps
      {"[harvest]\nsince = \"yesterday\"\n",
       "harvest.since: not a valid ISO 8601 date or date-time such as \"2024-05-01T00:00:00Z\" "
       "(got \"yesterday\")"},
      {"[harvest]\nsince = 12:00:00\n",
       "harvest.since: must be a date or date-time such as \"2024-05-01T00:00:00Z\" (got a time)"},
      // other values
      {"[harvest]\nscore_names = [\"a\\u0007\"]\n",
       "harvest.score_names[0]: must not contain control characters"},
      {"[store]\ndatabase = \"\"\n", "store.database: must not be empty"},
      {"[metrics]\ntextfile = \"/tmp/lfharvest.txt\"\n",
       "metrics.textfile: must end in .prom, the only files node_exporter's textfile collector "
       "reads (got \"/tmp/lfharvest.txt\")"},
      {"[langfuse]\nca_file = \"/nonexistent/ca.pem\"\n",
       "langfuse.ca_file: /nonexistent/ca.pem: No such file or directory"},
      {"[langfuse]\npublic_key = \"pk lf\"\n",
       "langfuse.public_key: must not contain spaces or control characters"},
      // syntax
      {"[limits]\nmax_in_flight = = 2\n", "syntax error at line 2, column 17: "},
      {"[limits]\nmax_in_flight = 2\nmax_in_flight = 3\n", "syntax error at line 3, column "},
  };
  for (const Case& c : cases) {
    CAPTURE(c.toml);
    std::string message = error_of(dir, c.toml);
    CHECK(message.rfind(file + ": ", 0) == 0);
    if (c.expected.starts_with("syntax error")) {  // the rest is toml++'s own wording
      CHECK_MESSAGE(has(message, c.expected), message);
    } else {
      CHECK(message == file + ": " + c.expected);
    }
  }
}

TEST_CASE("a secret_key in the file is refused and not echoed") {
  TempDir dir;
  std::string message = error_of(dir, "[langfuse]\nsecret_key = \"sk-lf-inline-9911\"\n");
  CHECK(has(message, "langfuse.secret_key: secret keys do not belong in the config file"));
  CHECK(has(message, "langfuse.secret_key_file"));
  CHECK(has(message, "LoadCredential=langfuse-secret-key"));
  CHECK_FALSE(has(message, "sk-lf-inline-9911"));
  CHECK(has(error_of(dir, "secret_key = \"sk-lf-inline-9911\"\n"),
            "secret_key: secret keys do not belong"));
}

TEST_CASE("environment and flag errors name the variable or the flag") {
  TempDir dir;
  auto error_with = [&](std::map<std::string, std::string> env, ConfigOverrides flags = {}) {
    Result<Config> c = load_config(flags, env_of(std::move(env)), offline(dir));
    REQUIRE(!c.ok());
    CHECK(c.status().kind() == ErrorKind::kConfig);
    return c.status().message();
  };
  CHECK(error_with({{"LANGFUSE_BASE_URL", "ftp://x"}}) ==
        "environment: LANGFUSE_BASE_URL: must start with http:// or https:// (got \"ftp://x\")");
  CHECK(error_with({{"LANGFUSE_HOST", "langfuse.example"}}) ==
        "environment: LANGFUSE_HOST: must start with http:// or https:// (got "
        "\"langfuse.example\")");
  CHECK(error_with({{"LFHARVEST_LOG_LEVEL", "loud"}}) ==
        "environment: LFHARVEST_LOG_LEVEL: must be one of trace, debug, info, warn, error, off "
        "(got \"loud\")");
  CHECK(error_with({{"LANGFUSE_PUBLIC_KEY", "pk-lf-a:b"}}) ==
        "environment: LANGFUSE_PUBLIC_KEY: must not contain ':' (it is the HTTP Basic user name)");
  ConfigOverrides bad_level;
  bad_level.log_level = "verbose";
  CHECK(has(error_with({}, bad_level), "command line: --log-level: must be one of"));
  ConfigOverrides bad_url;
  bad_url.base_url = "https://";
  CHECK(error_with({}, bad_url) == "command line: --base-url: has no host (got \"https://\")");
  ConfigOverrides empty_db;
  empty_db.database = "";
  CHECK(error_with({}, empty_db) == "command line: --db: must not be empty");
}

TEST_CASE("base_url: http only to loopback unless allowed, no user info, normalized") {
  TempDir dir;
  auto load_url = [&](const std::string& url, bool allow_insecure = false) {
    return load_text(dir, "[langfuse]\nbase_url = \"" + url + "\"\nallow_insecure_http = " +
                              (allow_insecure ? "true" : "false") + "\n");
  };
  auto normalized = [&](const std::string& url) {
    Result<Config> c = load_url(url);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    return c->base_url;
  };
  CHECK(normalized("http://localhost:3000/") == "http://localhost:3000");
  CHECK(normalized("http://127.8.9.10") == "http://127.8.9.10");
  CHECK(normalized("http://[::1]:3000") == "http://[::1]:3000");
  CHECK(normalized("HTTPS://cloud.langfuse.com///") == "https://cloud.langfuse.com");
  CHECK(normalized("https://example.com/langfuse/") == "https://example.com/langfuse");

  std::string file = dir.file("lfharvest.toml");
  Result<Config> insecure = load_url("http://10.1.2.3:3000");
  REQUIRE_FALSE(insecure.ok());
  CHECK(insecure.status().message() ==
        file +
            ": langfuse.base_url: http:// to 10.1.2.3 would send the secret key across the "
            "network in clear text; use https://, or set langfuse.allow_insecure_http = true (" +
            file + ": langfuse.allow_insecure_http is false) if the network is trusted");
  CHECK(load_url("http://10.1.2.3:3000", true).ok());
  CHECK_FALSE(load_url("http://128.0.0.1").ok());
  CHECK_FALSE(load_url("http://localhost.example.com").ok());

  Result<Config> from_env =
      load_config({}, env_of({{"LANGFUSE_BASE_URL", "http://langfuse.internal"}}), offline(dir));
  REQUIRE_FALSE(from_env.ok());
  CHECK(has(from_env.status().message(),
            "environment: LANGFUSE_BASE_URL: http:// to "
            "langfuse.internal would send the secret key"));
  CHECK(has(from_env.status().message(), "langfuse.allow_insecure_http = true in the config file"));

  Result<Config> userinfo = load_url("https://alice:hunter2pass@langfuse.example");
  REQUIRE_FALSE(userinfo.ok());
  CHECK(has(userinfo.status().message(), "must not contain a user name or password"));
  CHECK_FALSE(has(userinfo.status().message(), "hunter2pass"));
  CHECK_FALSE(has(userinfo.status().message(), "alice"));

  CHECK(has(load_url("https://x.example/?a=1").status().message(),
            "must not contain a query or a fragment"));
  CHECK(has(load_url("https://x.example:0").status().message(), "has an invalid port"));
  CHECK(has(load_url("https://x.example:70000").status().message(), "has an invalid port"));
  CHECK(has(load_url("https://x.example:").status().message(), "has an empty port"));
  CHECK(has(load_url("https://[::1").status().message(), "unterminated [IPv6] host"));
  CHECK(has(load_url("https://bad host").status().message(), "spaces or control characters"));
  CHECK(has(load_url("https://bad!host").status().message(), "has an invalid host name"));
}

TEST_CASE("read_secret_file accepts only a private regular file of this user") {
  TempDir dir;
  SUBCASE("0600 and 0400 are accepted; trailing whitespace is stripped") {
    Result<std::string> s = read_secret_file(dir.write("s1", "sk-lf-abc\r\n\n  \t"));
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    CHECK(*s == "sk-lf-abc");
    Result<std::string> read_only = read_secret_file(dir.write("s2", "sk-lf-def", 0400));
    REQUIRE(read_only.ok());
    CHECK(*read_only == "sk-lf-def");
  }
  SUBCASE("group or other permissions are refused, ssh style") {
    for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0610}) {
      CAPTURE(mode);
      std::string path = dir.write("open", kCanary, mode);
      Result<std::string> s = read_secret_file(path);
      REQUIRE_FALSE(s.ok());
      CHECK(s.status().kind() == ErrorKind::kConfig);
      char octal[8];
      std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
      CHECK(s.status().message() ==
            path + ": permissions " + octal +
                " are too open; the secret key file must not be accessible by group or others "
                "(chmod 600 " +
                path + ")");
    }
  }
  SUBCASE("a symlink is refused, even to a good file") {
    std::string target = dir.write("target", kCanary);
    std::string link = dir.file("link");
    REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
    Result<std::string> s = read_secret_file(link);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().message().rfind(link + ": is a symbolic link", 0) == 0);
  }
  SUBCASE("directories, FIFOs and missing files are refused") {
    std::string sub = dir.file("sub");
    REQUIRE(::mkdir(sub.c_str(), 0700) == 0);
    CHECK(read_secret_file(sub).status().message() == sub + ": not a regular file");
    std::string fifo = dir.file("fifo");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK(read_secret_file(fifo).status().message() == fifo + ": not a regular file");
    CHECK(read_secret_file(dir.file("none")).status().message() ==
          dir.file("none") + ": cannot read secret key file: No such file or directory");
  }
  SUBCASE("an empty key or one with inner whitespace is refused") {
    std::string empty = dir.write("empty", "\n\n");
    CHECK(read_secret_file(empty).status().message() == empty + ": the secret key file is empty");
    std::string two_lines = dir.write("two", std::string(kCanary) + "\nsecond-line\n");
    Result<std::string> s = read_secret_file(two_lines);
    REQUIRE_FALSE(s.ok());
    CHECK(has(s.status().message(), "contains spaces or control characters"));
    CHECK_FALSE(has(s.status().message(), kCanary));
  }
  SUBCASE("a file owned by another user is refused") {
    if (::geteuid() != 0) {
      MESSAGE("not root: cannot give a file to another user, ownership check not exercised");
      return;
    }
    std::string path = dir.write("other", kCanary);
    REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);
    Result<std::string> s = read_secret_file(path);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().message() == path +
                                      ": owned by uid 65534 but lfharvest runs as uid 0; the "
                                      "secret key file must be owned by the user that reads it "
                                      "(chown 0 " +
                                      path + ")");
  }
}

TEST_CASE("secret precedence: systemd credential > secret key file > environment") {
  TempDir dir;
  std::string credentials = dir.file("credentials");
  REQUIRE(::mkdir(credentials.c_str(), 0700) == 0);
  std::string file_secret = dir.write("file-secret", "sk-lf-from-file\n");
  ConfigOverrides overrides;
  overrides.config_path =
      dir.write("lfharvest.toml", "[langfuse]\nsecret_key_file = \"" + file_secret + "\"\n", 0644);
  LoadOptions options = offline(dir);
  options.need_secret = true;
  std::map<std::string, std::string> env = {{"LANGFUSE_PUBLIC_KEY", kPublicKey},
                                            {"LANGFUSE_SECRET_KEY", "sk-lf-from-env"},
                                            {"CREDENTIALS_DIRECTORY", credentials}};

  SUBCASE("the credential wins, even with systemd's usual permissions") {
    // Under systemd the credential may be owned by root and readable by the group; it sits in
    // a private mount, so only its type is checked.
    dir.write("credentials/langfuse-secret-key", "sk-lf-from-credential\n", 0440);
    Result<Config> c = load_config(overrides, env_of(env), options);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    CHECK(c->secret_key == "sk-lf-from-credential");
    CHECK(c->secret_source == "systemd credential langfuse-secret-key");
    CHECK(c->public_key == kPublicKey);
  }
  SUBCASE("a symlinked credential is refused") {
    std::string link = credentials + "/langfuse-secret-key";
    REQUIRE(::symlink(file_secret.c_str(), link.c_str()) == 0);
    Result<Config> c = load_config(overrides, env_of(env), options);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().rfind(
              "environment: CREDENTIALS_DIRECTORY: " + link + ": is a symbolic link", 0) == 0);
  }
  SUBCASE("without the credential, the secret key file") {
    Result<Config> c = load_config(overrides, env_of(env), options);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    CHECK(c->secret_key == "sk-lf-from-file");
    CHECK(c->secret_source == "file " + file_secret);
  }
  SUBCASE("a named secret key file that is refused is an error, not a fall-through") {
    REQUIRE(::chmod(file_secret.c_str(), 0644) == 0);
    Result<Config> c = load_config(overrides, env_of(env), options);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().rfind(overrides.config_path.value() +
                                         ": langfuse.secret_key_file: " + file_secret +
                                         ": permissions 0644 are too open",
                                     0) == 0);
  }
  SUBCASE("without either, the environment") {
    Result<Config> c = load_config({}, env_of(env), options);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    CHECK(c->secret_key == "sk-lf-from-env");
    CHECK(c->secret_source == "environment LANGFUSE_SECRET_KEY");
  }
  SUBCASE("no secret at all explains the three ways") {
    Result<Config> c = load_config({}, env_of({{"LANGFUSE_PUBLIC_KEY", kPublicKey}}), options);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().kind() == ErrorKind::kConfig);
    CHECK(has(c.status().message(), "LoadCredential=langfuse-secret-key"));
    CHECK(has(c.status().message(), "langfuse.secret_key_file"));
    CHECK(has(c.status().message(), "LFHARVEST_SECRET_KEY_FILE"));
    CHECK(has(c.status().message(), "LANGFUSE_SECRET_KEY"));
  }
  SUBCASE("no public key is an error when the secret is needed") {
    Result<Config> c = load_config({}, env_of({{"LANGFUSE_SECRET_KEY", "sk-lf-x"}}), options);
    REQUIRE_FALSE(c.ok());
    CHECK(has(c.status().message(), "LANGFUSE_PUBLIC_KEY"));
  }
  SUBCASE("when the secret is not needed, no secret file is read") {
    REQUIRE(::chmod(file_secret.c_str(), 0644) == 0);  // would be refused if it were read
    Result<Config> c = load_config(overrides, env_of(env), offline(dir));
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    CHECK(c->secret_key.empty());
  }
}

TEST_CASE("swapped keys are caught without echoing them") {
  TempDir dir;
  LoadOptions options = offline(dir);
  options.need_secret = true;
  Result<Config> public_is_secret = load_config(
      {}, env_of({{"LANGFUSE_PUBLIC_KEY", kCanary}, {"LANGFUSE_SECRET_KEY", kCanary}}), options);
  REQUIRE_FALSE(public_is_secret.ok());
  CHECK(has(public_is_secret.status().message(), "looks like a secret key"));
  CHECK_FALSE(has(public_is_secret.status().message(), kCanary));
  Result<Config> secret_is_public = load_config(
      {}, env_of({{"LANGFUSE_PUBLIC_KEY", kPublicKey}, {"LANGFUSE_SECRET_KEY", "pk-lf-9999"}}),
      options);
  REQUIRE_FALSE(secret_is_public.ok());
  CHECK(secret_is_public.status().message() ==
        "environment: LANGFUSE_SECRET_KEY: looks like a public key (starts with pk-lf-); the "
        "secret key starts with sk-lf-");
}

TEST_CASE("no error message ever contains the secret") {
  TempDir dir;
  LoadOptions options = offline(dir);
  options.need_secret = true;
  std::map<std::string, std::string> env = {{"LANGFUSE_PUBLIC_KEY", kPublicKey},
                                            {"LANGFUSE_SECRET_KEY", kCanary}};
  std::vector<std::string> messages;
  auto collect = [&](const ConfigOverrides& overrides, const EnvLookup& lookup) {
    Result<Config> c = load_config(overrides, lookup, options);
    REQUIRE(!c.ok());
    messages.push_back(c.status().message());
  };
  auto with_file = [&](const std::string& toml) {
    ConfigOverrides overrides;
    overrides.config_path = dir.write("lfharvest.toml", toml, 0644);
    return overrides;
  };
  std::string canary(kCanary);
  // The secret pasted into settings that echo their value.
  collect(with_file("[langfuse]\napi = \"" + canary + "\"\n"), env_of(env));
  collect(with_file("[log]\nlevel = \"" + canary + "\"\n"), env_of(env));
  collect(with_file("[[export]]\nname = \"a\"\nformat = \"" + canary + "\"\nout = \"-\"\n"),
          env_of(env));
  collect(with_file("[langfuse]\nbase_url = \"ftp://" + canary + "\"\n"), env_of(env));
  // The secret in places that are refused.
  collect(with_file("[langfuse]\nsecret_key = \"" + canary + "\"\n"), env_of(env));
  collect(with_file("[langfuse]\nbase_url = \"https://pk:" + canary + "@x.example\"\n"),
          env_of(env));
  collect(with_file("[langfuse]\npublic_key = \"" + canary + "\"\n"), env_of({}));
  std::map<std::string, std::string> level_env = env;
  level_env["LFHARVEST_LOG_LEVEL"] = canary;
  collect({}, env_of(level_env));
  ConfigOverrides url_flag;
  url_flag.base_url = "http://" + canary + ".example";
  collect(url_flag, env_of(env));
  // A secret file that is refused.
  std::string open_file = dir.write("open-secret", canary + "\n", 0644);
  std::map<std::string, std::string> file_env = env;
  file_env["LFHARVEST_SECRET_KEY_FILE"] = open_file;
  collect({}, env_of(file_env));

  REQUIRE(messages.size() == 10);
  for (const std::string& message : messages) {
    CAPTURE(message);
    CHECK_FALSE(has(message, canary));
    CHECK_FALSE(has(message, "CANARY"));
  }

  Result<Config> good = load_config({}, env_of(env), options);
  REQUIRE(good.ok());
  CHECK(good->secret_key == canary);
  CHECK_FALSE(has(good->secret_source, canary));
}

TEST_CASE("the example config loads and documents every key at its default") {
  std::string example = read_all(example_path());
  REQUIRE_FALSE(example.empty());
  TempDir dir;

  SUBCASE("as shipped") {
    ConfigOverrides overrides;
    overrides.config_path = example_path();
    Result<Config> c = load_config(overrides, env_of({}), offline(dir));
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    CHECK(c->exports.empty());
  }
  SUBCASE("with every setting uncommented") {
    std::string uncommented = uncomment_example(example);
    std::set<std::string> documented = keys_set_in(uncommented);
    std::vector<std::string> keys = config_file_keys();
    std::set<std::string> known(keys.begin(), keys.end());
    CHECK(known.size() == keys.size());
    for (const std::string& key : known) CHECK_MESSAGE(documented.count(key) == 1, key);
    for (const std::string& key : documented) CHECK_MESSAGE(known.count(key) == 1, key);

    Result<Config> c = load_text(dir, uncommented);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    // The values shown are the defaults (the few settings without a default show an example).
    const Config defaults;
    CHECK(c->base_url == defaults.base_url);
    CHECK(c->api == defaults.api);
    CHECK(c->allow_insecure_http == defaults.allow_insecure_http);
    CHECK(c->sources == defaults.sources);
    CHECK(c->score_names == defaults.score_names);
    CHECK(c->environments == defaults.environments);
    CHECK(c->overlap == defaults.overlap);
    CHECK(c->poll_interval == defaults.poll_interval);
    CHECK(c->max_wait == defaults.max_wait);
    CHECK(c->requests_per_second == defaults.requests_per_second);
    CHECK(c->max_in_flight == defaults.max_in_flight);
    CHECK(c->score_page_size == defaults.score_page_size);
    CHECK(c->observation_page_size == defaults.observation_page_size);
    CHECK(c->max_response_bytes == defaults.max_response_bytes);
    CHECK(c->big_response_bytes == defaults.big_response_bytes);
    CHECK(c->connect_timeout == defaults.connect_timeout);
    CHECK(c->request_timeout == defaults.request_timeout);
    CHECK(c->low_speed_bytes_per_second == defaults.low_speed_bytes_per_second);
    CHECK(c->low_speed_time == defaults.low_speed_time);
    CHECK(c->backoff_base == defaults.backoff_base);
    CHECK(c->backoff_cap == defaults.backoff_cap);
    CHECK(c->max_attempts == defaults.max_attempts);
    CHECK(c->breaker_failures == defaults.breaker_failures);
    CHECK(c->breaker_probe_base == defaults.breaker_probe_base);
    CHECK(c->breaker_probe_cap == defaults.breaker_probe_cap);
    CHECK(c->rescan_interval == defaults.rescan_interval);
    CHECK(c->rescan_window == defaults.rescan_window);
    CHECK(c->sweep_interval == defaults.sweep_interval);
    CHECK(c->settle_time == defaults.settle_time);
    CHECK(c->maintenance_share == defaults.maintenance_share);
    CHECK(c->log_level == defaults.log_level);
    CHECK(c->metrics_textfile == defaults.metrics_textfile);

    REQUIRE(c->exports.size() == 5);
    const ExportSpec& good = c->exports[0];
    CHECK(good.name == "good-chat");
    CHECK(good.format == "openai-chat");
    CHECK(good.values == std::vector<std::string>{"Good"});
    CHECK(good.source == "ANNOTATION");
    CHECK(good.sharegpt_dialect == "llamafactory");
    CHECK(good.repeated_answer == "keep");
    const ExportSpec& pairs = c->exports[3];
    CHECK(pairs.format == "trl-dpo");
    CHECK(pairs.repeated_answer == "merge");
    CHECK(pairs.max_record_bytes == 1000000u);
    CHECK(pairs.drop_duplicates);
    CHECK(pairs.validation_fraction == 0.1);
    CHECK(c->exports[4].sharegpt_dialect == "axolotl");
  }
}

}  // namespace lfh
