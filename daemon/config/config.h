// One validated, immutable Config built from: command-line flags > environment > TOML file >
// defaults. config/lfharvest.toml documents every key. Only config.cc includes toml++.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/status.h"

namespace lfh {

using Seconds = std::chrono::seconds;

struct ExportSpec {
  std::string name;    // [[export]] name = "good-chat"
  std::string format;  // json | jsonl | openai-chat | openai-dpo | kto | sharegpt | trl-dpo
  std::string out;     // output path, "-" for stdout
  std::vector<std::string> score_names;
  std::vector<std::string> values;  // any of these labels / numbers / true|false
  std::string source = "ANNOTATION";
  std::optional<double> min;
  std::optional<double> max;
  std::optional<std::string> since;  // canonical ISO 8601
  std::optional<std::string> until;
  std::vector<std::string> environments;
  std::string pick = "last-generation";  // last-generation | all-generations | root
  std::optional<std::string> positive;   // kto: the value that counts as a positive label
  bool incremental = false;
  std::string sharegpt_dialect = "llamafactory";  // llamafactory | axolotl
  std::string repeated_answer = "keep";           // keep | drop | merge
  std::string non_alternating = "keep";           // keep | drop | merge
  std::optional<std::uint64_t> max_record_bytes;  // larger records are skipped
  bool drop_duplicates = false;                   // identical records after the first
  std::optional<double> validation_fraction;      // (0, 1): a validation file beside out
};

struct Config {
  // [langfuse]
  std::string base_url = "http://127.0.0.1:3000";
  std::string public_key;
  std::string secret_key;     // from $CREDENTIALS_DIRECTORY, secret_key_file or the environment
  std::string secret_source;  // where it came from, for messages: "file /etc/...", "environment"
  std::string api = "auto";   // auto | current | legacy
  std::string ca_file;        // extra CA bundle (PEM); empty = system store
  bool allow_insecure_http = false;  // http:// to a non-loopback host

  // [harvest]
  std::vector<std::string> sources{"ANNOTATION"};
  std::vector<std::string> score_names;   // empty = all
  std::vector<std::string> environments;  // empty = all
  Seconds overlap{15 * 60};
  std::optional<std::string> since;  // first poll starts here (canonical ISO); empty = all history

  // [sync]
  Seconds poll_interval{60};
  Seconds max_wait{60};

  // [limits]
  double requests_per_second = 5.0;  // the budget; requests_per_minute, when set, wins
  std::optional<double> requests_per_minute;
  int max_in_flight = 2;
  int score_page_size = 100;       // 1..100
  int observation_page_size = 10;  // 1..1000 (legacy API: capped at 100)
  std::size_t max_response_bytes = 64ull << 20;
  // A trace whose observation page is larger is fetched alone, one observation per page.
  std::size_t big_response_bytes = 4ull << 20;
  Seconds connect_timeout{10};
  Seconds request_timeout{300};
  long low_speed_bytes_per_second = 1024;
  Seconds low_speed_time{30};

  // [retry]
  std::chrono::milliseconds backoff_base{1000};
  Seconds backoff_cap{600};
  int max_attempts = 10;
  int breaker_failures = 5;
  Seconds breaker_probe_base{5};
  Seconds breaker_probe_cap{300};

  // [maintenance]
  Seconds rescan_interval{3600};
  Seconds rescan_window{7 * 24 * 3600};
  Seconds sweep_interval{24 * 3600};
  Seconds settle_time{30 * 60};
  double maintenance_share = 0.2;  // of the request budget, 0..1

  // [store]
  std::string database;  // default: $STATE_DIRECTORY/lfharvest.db, else ./lfharvest.db

  // [log]
  log::Level log_level = log::Level::kInfo;

  // [metrics]
  std::string metrics_textfile;  // Prometheus textfile path; empty = off

  std::vector<ExportSpec> exports;

  std::string config_path;  // the file that was read, empty when none
  // How config_path was found: "--config", "$LFHARVEST_CONFIG", "working directory",
  // "$XDG_CONFIG_HOME", "~/.config", "system default"; empty when none.
  std::string config_origin;
};

/// Values given on the command line; each set one overrides everything else.
struct ConfigOverrides {
  std::optional<std::string> config_path;  // --config
  std::optional<std::string> database;     // --db
  std::optional<std::string> base_url;     // --base-url
  std::optional<std::string> log_level;    // --log-level
};

/// Reads an environment variable; tests inject a map instead of the real environment.
/// load_config treats a variable set to the empty string as unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
/// A lookup over the real process environment (getenv). Not safe against concurrent setenv.
EnvLookup process_env();

struct LoadOptions {
  /// false for commands that never talk to the server (status, export): then no secret is read
  /// at all (no secret file is opened) and public_key may be empty.
  bool need_secret = true;
  /// Read when no --config is given and the file exists; tests point it elsewhere.
  std::string default_config_path = "/etc/lfharvest/lfharvest.toml";
  /// Without --config the first of these that exists is read (one file, never merged):
  /// $LFHARVEST_CONFIG (an error when set and missing), ./lfharvest.toml,
  /// $XDG_CONFIG_HOME/lfharvest/lfharvest.toml (~/.config/... when XDG_CONFIG_HOME is unset),
  /// then default_config_path. false: only default_config_path (tests of the system default).
  bool search_user_paths = true;
};

/// The files load_config would try without --config, in order, each with its origin
/// (see Config::config_origin).
std::vector<std::pair<std::string, std::string>> config_search_path(const EnvLookup& env,
                                                                    const LoadOptions& options);

/// Builds the Config: defaults, then the TOML file, then the environment (LANGFUSE_BASE_URL or
/// LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY, LFHARVEST_DB, LFHARVEST_LOG_LEVEL,
/// LFHARVEST_SECRET_KEY_FILE), then the overrides. The secret key comes from
/// $CREDENTIALS_DIRECTORY/langfuse-secret-key, else langfuse.secret_key_file, else
/// LANGFUSE_SECRET_KEY. Errors (kConfig) name where the value came from, the key and the reason:
/// "/etc/lfharvest/lfharvest.toml: limits.max_in_flight: must be between 1 and 64 (got 0)",
/// "environment: LANGFUSE_BASE_URL: ...", "command line: --base-url: ..."; keys of [[export]]
/// tables read "export[0].format" (counting from 0 in file order). No message ever contains the
/// secret key. Pure apart from reading files and env: safe to call again (SIGHUP reload); the
/// caller registers config.secret_key with log::add_secret.
Result<Config> load_config(const ConfigOverrides& overrides, const EnvLookup& env,
                           const LoadOptions& options = {});

/// Every dotted key a config file may set ("limits.max_in_flight", "export.format"), in
/// documentation order; aliases (harvest.names, export.names) are not listed.
std::vector<std::string> config_file_keys();

/// Reads a secret from a file, refusing (kConfig, with how to fix it) a symlink, a file readable
/// or writable by group or others, or one owned by another user, before reading it. Trailing
/// whitespace and newlines are stripped; an empty secret, or one with whitespace or control
/// characters inside, is an error. Messages start with the path and never contain the secret.
Result<std::string> read_secret_file(const std::string& path);

}  // namespace lfh
