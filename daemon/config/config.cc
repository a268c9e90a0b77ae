#include "config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "core/time_format.h"

namespace lfh {
namespace {

constexpr std::string_view kCredentialName = "langfuse-secret-key";
constexpr std::size_t kMaxSecretBytes = 64 * 1024;
constexpr std::size_t kMaxConfigBytes = 4 * 1024 * 1024;
// Secrets shorter than this are not scrubbed from messages: replacing every occurrence of a
// one- or two-character "secret" would mangle the message without protecting anything.
constexpr std::size_t kMinScrubbedSecretLength = 4;

// ---------------------------------------------------------------------------------------------
// The keys a config file may hold. The same lists drive unknown-key detection and
// config_file_keys(), so the documentation test and the loader cannot drift apart.

constexpr std::string_view kLangfuseKeys[] = {"base_url", "public_key", "secret_key_file",
                                              "api",      "ca_file",    "allow_insecure_http"};
constexpr std::string_view kHarvestKeys[] = {"sources", "score_names", "environments",
                                             "overlap_minutes", "since"};
constexpr std::string_view kSyncKeys[] = {"poll_interval_seconds", "max_wait_seconds"};
constexpr std::string_view kLimitsKeys[] = {
    "requests_per_second",     "requests_per_minute",     "max_in_flight",
    "score_page_size",         "observation_page_size",   "max_response_mib",
    "connect_timeout_seconds", "request_timeout_seconds", "low_speed_bytes_per_second",
    "low_speed_time_seconds",  "big_response_mib"};
constexpr std::string_view kRetryKeys[] = {
    "backoff_base_ms",  "backoff_cap_seconds",        "max_attempts",
    "breaker_failures", "breaker_probe_base_seconds", "breaker_probe_cap_seconds"};
constexpr std::string_view kMaintenanceKeys[] = {"rescan_interval_minutes", "rescan_window_days",
                                                 "sweep_interval_hours", "settle_minutes",
                                                 "budget_share"};
constexpr std::string_view kStoreKeys[] = {"database"};
constexpr std::string_view kLogKeys[] = {"level"};
constexpr std::string_view kMetricsKeys[] = {"textfile"};
constexpr std::string_view kExportKeys[] = {"name",
                                            "format",
                                            "out",
                                            "score_names",
                                            "values",
                                            "source",
                                            "min",
                                            "max",
                                            "since",
                                            "until",
                                            "environments",
                                            "pick",
                                            "positive",
                                            "incremental",
                                            "sharegpt_dialect",
                                            "repeated_answer",
                                            "non_alternating",
                                            "max_record_bytes",
                                            "drop_duplicates",
                                            "validation_fraction"};
constexpr std::string_view kScoreNamesAlias[] = {"names"};

struct SectionSpec {
  std::string_view name;
  std::span<const std::string_view> keys;
  std::span<const std::string_view> aliases;
};

constexpr SectionSpec kSections[] = {
    {"langfuse", kLangfuseKeys, {}}, {"harvest", kHarvestKeys, kScoreNamesAlias},
    {"sync", kSyncKeys, {}},         {"limits", kLimitsKeys, {}},
    {"retry", kRetryKeys, {}},       {"maintenance", kMaintenanceKeys, {}},
    {"store", kStoreKeys, {}},       {"log", kLogKeys, {}},
    {"metrics", kMetricsKeys, {}},
};
constexpr SectionSpec kExportSection = {"export", kExportKeys, kScoreNamesAlias};

constexpr std::string_view kScoreSources[] = {"ANNOTATION", "API", "EVAL"};
constexpr std::string_view kApiGenerations[] = {"auto", "current", "legacy"};
constexpr std::string_view kExportFormats[] = {"json", "jsonl",    "openai-chat", "openai-dpo",
                                               "kto",  "sharegpt", "trl-dpo"};
constexpr std::string_view kShareGptDialects[] = {"llamafactory", "axolotl"};
constexpr std::string_view kTurnPolicies[] = {"keep", "drop", "merge"};
constexpr std::string_view kPicks[] = {"last-generation", "all-generations", "root"};

// ---------------------------------------------------------------------------------------------
// Small helpers.

Status config_error(std::string_view where, std::string_view key, std::string_view reason) {
  return Status::Error(ErrorKind::kConfig, fmt::format("{}: {}: {}", where, key, reason));
}

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

bool has_control_chars(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

bool has_space_or_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

bool contains(std::span<const std::string_view> list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string one_of(std::span<const std::string_view> allowed) {
  return fmt::format("must be one of {}", fmt::join(allowed.begin(), allowed.end(), ", "));
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean max_in_flight?)" for a near miss, "" when nothing is close.
std::string closest_hint(std::string_view key, std::span<const std::string_view> known) {
  std::string_view best;
  std::size_t best_distance = std::max<std::size_t>(2, key.size() / 4) + 1;
  for (std::string_view candidate : known) {
    std::size_t d = edit_distance(key, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best.empty() ? std::string() : fmt::format(" (did you mean {}?)", best);
}

std::string secret_in_file_reason() {
  return "secret keys do not belong in the config file, which every local user can read; put "
         "the key in a file only the service user can read (chmod 600) and set "
         "langfuse.secret_key_file, or pass it with systemd LoadCredential=langfuse-secret-key, "
         "or set the LANGFUSE_SECRET_KEY environment variable";
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// TOML has native dates; the rest of the program works with canonical ISO 8601 strings.
std::optional<std::string> native_timestamp_text(const toml::node& node) {
  auto date_text = [](const toml::date& d) {
    return fmt::format("{:04}-{:02}-{:02}", d.year, d.month, d.day);
  };
  if (const auto* date = node.as_date()) return date_text(date->get());
  if (const auto* date_time = node.as_date_time()) {
    const toml::date_time& dt = date_time->get();
    std::string text = fmt::format("{}T{:02}:{:02}:{:02}.{:09}", date_text(dt.date), dt.time.hour,
                                   dt.time.minute, dt.time.second, dt.time.nanosecond);
    if (dt.offset) {
      int minutes = dt.offset->minutes;
      char sign = minutes < 0 ? '-' : '+';
      minutes = std::abs(minutes);
      text += fmt::format("{}{:02}:{:02}", sign, minutes / 60, minutes % 60);
    }
    // A local date-time (no offset) is taken as UTC, like the string form without a zone.
    return text;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Reads the values of one table. The first error sticks: later reads do nothing, so a section is
// read as a flat list of statements and status() reports what went wrong first.

class TableReader {
 public:
  TableReader(const toml::table& table, std::string_view file, std::string prefix)
      : table_(table), file_(file), prefix_(std::move(prefix)) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  std::string path(std::string_view key) const { return prefix_ + std::string(key); }

  void fail(std::string_view key, std::string_view reason) {
    if (ok()) status_ = config_error(file_, path(key), reason);
  }

  bool has(std::string_view key) const { return table_.get(key) != nullptr; }

  // Unknown keys are reported before any value so a typo is named as such, not as a missing
  // value somewhere else.
  void check_keys(const SectionSpec& spec) {
    for (auto&& [toml_key, node] : table_) {
      if (!ok()) return;
      std::string_view key = toml_key.str();
      if (contains(spec.keys, key) || contains(spec.aliases, key)) continue;
      if (key == "secret_key") {
        fail(key, secret_in_file_reason());
        continue;
      }
      std::string hint;
      for (const SectionSpec& other : kSections) {
        if (other.name != spec.name && contains(other.keys, key)) {
          hint = fmt::format(" (it belongs in [{}])", other.name);
        }
      }
      if (hint.empty()) hint = closest_hint(key, spec.keys);
      fail(key, "unknown key" + hint);
    }
  }

  void read_string(std::string_view key, std::string& out) {
    if (const toml::node* node = expect(key, toml::node_type::string, "a string")) {
      std::string value = node->as_string()->get();
      if (check_text(key, value)) out = std::move(value);
    }
  }

  void read_nonempty_string(std::string_view key, std::string& out) {
    std::string value = out;
    read_string(key, value);
    if (ok() && has(key) && value.empty()) fail(key, "must not be empty");
    if (ok()) out = std::move(value);
  }

  void read_bool(std::string_view key, bool& out) {
    if (const toml::node* node = expect(key, toml::node_type::boolean, "true or false")) {
      out = node->as_boolean()->get();
    }
  }

  template <typename Int>
  void read_int(std::string_view key, long long min, long long max, Int& out) {
    if (std::optional<long long> value = integer_in_range(key, min, max)) {
      out = static_cast<Int>(*value);
    }
  }

  // An integer count of `unit` (for example minutes) stored as a std::chrono duration.
  template <typename Duration, typename Unit>
  void read_duration(std::string_view key, Unit unit, long long min, long long max, Duration& out) {
    if (std::optional<long long> value = integer_in_range(key, min, max)) {
      out = std::chrono::duration_cast<Duration>(unit * *value);
    }
  }

  // A finite number; integers are accepted too. min_exclusive turns "at least" into "more than".
  void read_number(std::string_view key, double min, bool min_exclusive, double max,
                   std::optional<double>& out) {
    const toml::node* node = lookup(key);
    if (!node) return;
    double value = 0;
    if (const auto* integer = node->as_integer()) {
      value = static_cast<double>(integer->get());
    } else if (const auto* floating = node->as_floating_point()) {
      value = floating->get();
    } else {
      fail(key, fmt::format("must be a number (got {})", type_name(*node)));
      return;
    }
    if (!std::isfinite(value)) {
      fail(key, "must be a finite number");
      return;
    }
    bool below = min_exclusive ? value <= min : value < min;
    if (below || value > max) {
      fail(key, fmt::format("must be {} {} and at most {} (got {})",
                            min_exclusive ? "more than" : "at least", min, max, value));
      return;
    }
    out = value;
  }

  void read_number(std::string_view key, double min, bool min_exclusive, double max, double& out) {
    std::optional<double> value;
    read_number(key, min, min_exclusive, max, value);
    if (value) out = *value;
  }

  // upper_case: the value is taken in any case and stored in upper case (score sources).
  void read_enum(std::string_view key, std::span<const std::string_view> allowed, std::string& out,
                 bool upper_case = false) {
    std::string value;
    read_string(key, value);
    if (!ok() || !has(key)) return;
    const std::string given = value;
    if (upper_case) {
      for (char& ch : value) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    if (!contains(allowed, value)) {
      fail(key, fmt::format("{}{} (got \"{}\")", one_of(allowed), upper_case ? ", in any case" : "",
                            given));
      return;
    }
    out = std::move(value);
  }

  // An array of non-empty strings; with `allowed`, each must be one of those.
  void read_string_list(std::string_view key, std::vector<std::string>& out,
                        std::span<const std::string_view> allowed = {}) {
    const toml::array* array = expect_array(key, "an array of strings");
    if (!array) return;
    std::vector<std::string> values;
    for (std::size_t i = 0; i < array->size() && ok(); ++i) {
      std::string item_key = fmt::format("{}[{}]", key, i);
      const toml::node& item = (*array)[i];
      const auto* text = item.as_string();
      if (!text) {
        fail(item_key, fmt::format("must be a string (got {})", type_name(item)));
      } else if (text->get().empty()) {
        fail(item_key, "must not be empty");
      } else if (check_text(item_key, text->get())) {
        if (!allowed.empty() && !contains(allowed, text->get())) {
          fail(item_key, fmt::format("{} (got \"{}\")", one_of(allowed), text->get()));
        }
        values.push_back(text->get());
      }
    }
    if (ok()) out = std::move(values);
  }

  // A label to match a score value: a string, a number or a boolean, kept as text.
  void read_label(std::string_view key, std::optional<std::string>& out) {
    const toml::node* node = lookup(key);
    if (!node) return;
    if (std::optional<std::string> text = label_text(key, *node)) out = std::move(text);
  }

  void read_label_list(std::string_view key, std::vector<std::string>& out) {
    const toml::array* array = expect_array(key, "an array of labels, numbers or booleans");
    if (!array) return;
    std::vector<std::string> values;
    for (std::size_t i = 0; i < array->size() && ok(); ++i) {
      std::optional<std::string> text = label_text(fmt::format("{}[{}]", key, i), (*array)[i]);
      if (text) values.push_back(std::move(*text));
    }
    if (ok()) out = std::move(values);
  }

  // An ISO 8601 string or a TOML date / date-time, stored in the canonical form.
  void read_timestamp(std::string_view key, std::optional<std::string>& out) {
    const toml::node* node = lookup(key);
    if (!node) return;
    std::optional<std::string> text;
    if (const auto* string = node->as_string()) {
      text = string->get();
    } else {
      text = native_timestamp_text(*node);
    }
    if (!text) {
      fail(key, fmt::format("must be a date or date-time such as \"2024-05-01T00:00:00Z\" (got {})",
                            type_name(*node)));
      return;
    }
    std::optional<std::string> canonical = canonical_iso8601(*text);
    if (!canonical) {
      if (!check_text(key, *text)) return;
      fail(key, fmt::format("not a valid ISO 8601 date or date-time such as "
                            "\"2024-05-01T00:00:00Z\" (got \"{}\")",
                            *text));
      return;
    }
    out = std::move(canonical);
  }

 private:
  const toml::node* lookup(std::string_view key) const { return ok() ? table_.get(key) : nullptr; }

  const toml::node* expect(std::string_view key, toml::node_type type, std::string_view what) {
    const toml::node* node = lookup(key);
    if (node && node->type() != type) {
      fail(key, fmt::format("must be {} (got {})", what, type_name(*node)));
      return nullptr;
    }
    return node;
  }

  const toml::array* expect_array(std::string_view key, std::string_view what) {
    const toml::node* node = expect(key, toml::node_type::array, what);
    return node ? node->as_array() : nullptr;
  }

  std::optional<long long> integer_in_range(std::string_view key, long long min, long long max) {
    const toml::node* node = expect(key, toml::node_type::integer, "an integer");
    if (!node) return std::nullopt;
    long long value = node->as_integer()->get();
    if (value < min || value > max) {
      fail(key, fmt::format("must be between {} and {} (got {})", min, max, value));
      return std::nullopt;
    }
    return value;
  }

  // Control characters are refused everywhere: they are never meant, and they would corrupt
  // log lines, paths and HTTP query strings. The value is not echoed (it may be binary junk).
  bool check_text(std::string_view key, std::string_view text) {
    if (has_control_chars(text)) {
      fail(key, "must not contain control characters");
      return false;
    }
    return true;
  }

  std::optional<std::string> label_text(std::string_view key, const toml::node& node) {
    if (const auto* text = node.as_string()) {
      if (text->get().empty()) {
        fail(key, "must not be empty");
        return std::nullopt;
      }
      if (!check_text(key, text->get())) return std::nullopt;
      return text->get();
    }
    if (const auto* integer = node.as_integer()) return fmt::format("{}", integer->get());
    if (const auto* floating = node.as_floating_point()) {
      if (std::isfinite(floating->get())) return fmt::format("{}", floating->get());
      fail(key, "must be a finite number");
      return std::nullopt;
    }
    if (const auto* boolean = node.as_boolean()) return boolean->get() ? "true" : "false";
    fail(key, fmt::format("must be a string, a number or a boolean (got {})", type_name(node)));
    return std::nullopt;
  }

  const toml::table& table_;
  std::string_view file_;
  std::string prefix_;
  Status status_;
};

// ---------------------------------------------------------------------------------------------
// Files.

// Owns a file descriptor; closes it on scope exit.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

Result<std::string> read_small_file(const std::string& path, std::size_t max_bytes) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) {
    return Status::Error(ErrorKind::kConfig, fmt::format("{}: {}", path, errno_text(errno)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Status::Error(ErrorKind::kConfig, fmt::format("{}: {}", path, errno_text(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::Error(ErrorKind::kConfig, fmt::format("{}: not a regular file", path));
  }
  std::string content;
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Status::Error(ErrorKind::kConfig, fmt::format("{}: {}", path, errno_text(errno)));
    }
    if (n == 0) break;
    if (content.size() + static_cast<std::size_t>(n) > max_bytes) {
      return Status::Error(ErrorKind::kConfig,
                           fmt::format("{}: larger than {} bytes", path, max_bytes));
    }
    content.append(buffer, static_cast<std::size_t>(n));
  }
  return content;
}

std::string octal_mode(mode_t mode) {
  return fmt::format("{:04o}", mode & 07777);
}

constexpr std::string_view kSymlinkReason =
    "is a symbolic link; a secret key file must be a regular file (point the setting at the real "
    "file)";

// The shared part of read_secret_file and the systemd credential. `strict` adds the ownership
// and permission checks; the caller decides whether they apply.
Result<std::string> read_secret(const std::string& path, bool strict) {
  auto refuse = [&](std::string_view reason) {
    return Status::Error(ErrorKind::kConfig, fmt::format("{}: {}", path, reason));
  };
  auto check = [&](const struct stat& st) -> Status {
    if (S_ISLNK(st.st_mode)) return refuse(kSymlinkReason);
    if (!S_ISREG(st.st_mode)) return refuse("not a regular file");
    if (!strict) return Status::Ok();
    uid_t me = ::geteuid();
    if (st.st_uid != me) {
      return refuse(fmt::format(
          "owned by uid {} but lfharvest runs as uid {}; the secret key file must be owned by "
          "the user that reads it (chown {} {})",
          st.st_uid, me, me, path));
    }
    if ((st.st_mode & 077) != 0) {
      return refuse(fmt::format(
          "permissions {} are too open; the secret key file must not be accessible by group or "
          "others (chmod 600 {})",
          octal_mode(st.st_mode), path));
    }
    return Status::Ok();
  };

  // Everything is decided from lstat before the file is opened, like ssh does with keys.
  struct stat before {};
  if (::lstat(path.c_str(), &before) != 0) {
    return refuse(fmt::format("cannot read secret key file: {}", errno_text(errno)));
  }
  if (Status s = check(before); !s.ok()) return s;

  // O_NOFOLLOW refuses a symlink swapped in after lstat; O_NONBLOCK keeps a FIFO swapped in from
  // blocking the open. fstat then proves that the file opened is the one checked, and checks it
  // again in case its mode or owner changed in between.
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ELOOP) return refuse(kSymlinkReason);
    return refuse(fmt::format("cannot read secret key file: {}", errno_text(errno)));
  }
  struct stat opened {};
  if (::fstat(fd.get(), &opened) != 0) {
    return refuse(fmt::format("cannot read secret key file: {}", errno_text(errno)));
  }
  if (opened.st_dev != before.st_dev || opened.st_ino != before.st_ino) {
    return refuse("the file changed while it was being opened; try again");
  }
  if (Status s = check(opened); !s.ok()) return s;

  std::string secret;
  secret.reserve(kMaxSecretBytes);  // no reallocation leaves a stray copy on the heap
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return refuse(fmt::format("cannot read secret key file: {}", errno_text(errno)));
    if (n == 0) break;
    if (secret.size() + static_cast<std::size_t>(n) > kMaxSecretBytes) {
      ::explicit_bzero(buffer, sizeof buffer);
      return refuse(
          fmt::format("larger than {} bytes; it must hold only the secret key", kMaxSecretBytes));
    }
    secret.append(buffer, static_cast<std::size_t>(n));
  }
  ::explicit_bzero(buffer, sizeof buffer);
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) {
    secret.pop_back();
  }
  if (secret.empty()) return refuse("the secret key file is empty");
  if (has_space_or_control(secret)) {
    return refuse(
        "the secret key contains spaces or control characters; the file must hold "
        "only the key");
  }
  return secret;
}

// ---------------------------------------------------------------------------------------------
// Values that need more than a type check.

struct ParsedUrl {
  std::string normalized;
  std::string scheme;
  std::string host;  // without brackets for IPv6
};

bool is_loopback_host(const std::string& host) {
  std::string lower = ascii_lower(host);
  if (lower == "localhost" || lower == "localhost.") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, lower.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, lower.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

bool is_host_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

// `where` is "<file>: langfuse.base_url", "environment: LANGFUSE_BASE_URL", ...
Result<ParsedUrl> parse_base_url(std::string_view raw, std::string_view where) {
  // A URL with '@' may carry a password: it is never echoed.
  bool may_echo = raw.find('@') == std::string_view::npos && !has_control_chars(raw);
  auto error = [&](std::string_view reason) {
    std::string message(reason);
    if (may_echo) message += fmt::format(" (got \"{}\")", raw);
    return Status::Error(ErrorKind::kConfig, fmt::format("{}: {}", where, message));
  };
  if (has_space_or_control(raw)) return error("must not contain spaces or control characters");
  std::size_t scheme_end = raw.find("://");
  std::string scheme =
      scheme_end == std::string_view::npos ? std::string() : ascii_lower(raw.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") {
    return error("must start with http:// or https://");
  }
  std::string_view rest = raw.substr(scheme_end + 3);
  std::size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view tail =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    return error(
        "must not contain a user name or password; give the public key with "
        "langfuse.public_key or LANGFUSE_PUBLIC_KEY and the secret key through a secret key file");
  }
  if (tail.find_first_of("?#") != std::string_view::npos) {
    return error("must not contain a query or a fragment");
  }

  std::string host;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return error("has an unterminated [IPv6] host");
    host = std::string(authority.substr(1, close - 1));
    in6_addr v6{};
    if (::inet_pton(AF_INET6, host.c_str(), &v6) != 1) return error("has an invalid IPv6 host");
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return error("has junk after the [IPv6] host");
      port = after.substr(1);
      if (port.empty()) return error("has an empty port");
    }
  } else {
    std::size_t colon = authority.find(':');
    host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return error("has an empty port");
    }
    if (!std::all_of(host.begin(), host.end(), is_host_name_char)) {
      return error("has an invalid host name");
    }
  }
  if (host.empty()) return error("has no host");
  if (!port.empty()) {
    bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) {
                    return std::isdigit(static_cast<unsigned char>(c));
                  });
    if (!digits || std::stoi(std::string(port)) < 1 || std::stoi(std::string(port)) > 65535) {
      return error("has an invalid port (must be 1..65535)");
    }
  }
  // A trailing slash would give "//api/public/..." once paths are appended.
  while (!tail.empty() && tail.back() == '/') tail.remove_suffix(1);
  ParsedUrl url;
  url.scheme = scheme;
  url.host = host;
  url.normalized = fmt::format("{}://{}{}", scheme, authority, tail);
  return url;
}

// The checks below return what is wrong (nullopt when nothing is) so that the file, environment
// and command-line layers can each say where the value came from.

// The public key is the Basic-auth user name. It is never echoed, in case it is really the secret.
std::optional<std::string> public_key_problem(std::string_view key) {
  if (has_space_or_control(key)) return "must not contain spaces or control characters";
  if (key.find(':') != std::string_view::npos) {
    return "must not contain ':' (it is the HTTP Basic user name)";
  }
  if (key.starts_with("sk-lf-")) {
    return "looks like a secret key (starts with sk-lf-); the public key starts with pk-lf-";
  }
  return std::nullopt;
}

std::optional<std::string> secret_problem(std::string_view secret) {
  if (has_space_or_control(secret)) return "the secret key contains spaces or control characters";
  if (secret.starts_with("pk-lf-")) {
    return "looks like a public key (starts with pk-lf-); the secret key starts with sk-lf-";
  }
  return std::nullopt;
}

std::optional<std::string> log_level_problem(std::string_view text, log::Level& out) {
  if (log::parse_level(text, out)) return std::nullopt;
  std::string shown = has_control_chars(text) ? std::string() : fmt::format(" (got \"{}\")", text);
  return fmt::format("must be one of trace, debug, info, warn, error, off{}", shown);
}

Status error_at(std::string_view where, std::string_view reason) {
  return Status::Error(ErrorKind::kConfig, fmt::format("{}: {}", where, reason));
}

// ---------------------------------------------------------------------------------------------
// Loading, layer by layer.

// What the layers know beyond the Config itself: where each overridable value came from, for
// messages that must name the right place.
struct Provenance {
  std::string base_url_where;  // empty while the default is in use
  std::string allow_insecure_where;
  std::optional<std::string> secret_key_file;
  std::string secret_key_file_where;
};

void read_langfuse(TableReader& t, Config& c, Provenance& p, const std::string& file) {
  std::string base_url;
  t.read_string("base_url", base_url);
  if (t.ok() && t.has("base_url")) {
    p.base_url_where = fmt::format("{}: {}", file, t.path("base_url"));
    c.base_url = base_url;  // validated once all layers are applied
  }
  t.read_string("public_key", c.public_key);
  if (t.ok() && !c.public_key.empty()) {
    if (std::optional<std::string> problem = public_key_problem(c.public_key)) {
      t.fail("public_key", *problem);
    }
  }
  std::string secret_key_file;
  t.read_string("secret_key_file", secret_key_file);
  if (t.ok() && !secret_key_file.empty()) {
    p.secret_key_file = secret_key_file;
    p.secret_key_file_where = fmt::format("{}: {}", file, t.path("secret_key_file"));
  }
  t.read_enum("api", kApiGenerations, c.api);
  t.read_string("ca_file", c.ca_file);
  if (t.ok() && !c.ca_file.empty()) {
    struct stat st {};
    if (::stat(c.ca_file.c_str(), &st) != 0) {
      t.fail("ca_file", fmt::format("{}: {}", c.ca_file, errno_text(errno)));
    } else if (!S_ISREG(st.st_mode)) {
      t.fail("ca_file", fmt::format("{}: not a regular file", c.ca_file));
    }
  }
  t.read_bool("allow_insecure_http", c.allow_insecure_http);
  if (t.has("allow_insecure_http")) {
    p.allow_insecure_where = fmt::format("{}: {}", file, t.path("allow_insecure_http"));
  }
}

// Both [harvest] and [[export]] take score_names, with names as an alias.
void read_score_names(TableReader& t, std::vector<std::string>& out) {
  if (t.has("score_names") && t.has("names")) {
    t.fail("names", fmt::format("is an alias of {}; set only one of them", t.path("score_names")));
  }
  t.read_string_list("score_names", out);
  t.read_string_list("names", out);
}

void read_harvest(TableReader& t, Config& c) {
  t.read_string_list("sources", c.sources, kScoreSources);
  if (t.ok() && c.sources.empty()) {
    t.fail("sources", fmt::format("must list at least one source; {}", one_of(kScoreSources)));
  }
  read_score_names(t, c.score_names);
  t.read_string_list("environments", c.environments);
  t.read_duration("overlap_minutes", std::chrono::minutes(1), 0, 24 * 60, c.overlap);
  t.read_timestamp("since", c.since);
}

void read_sync(TableReader& t, Config& c) {
  t.read_duration("poll_interval_seconds", Seconds(1), 1, 24 * 3600, c.poll_interval);
  t.read_duration("max_wait_seconds", Seconds(1), 0, 24 * 3600, c.max_wait);
}

void read_limits(TableReader& t, Config& c) {
  t.read_number("requests_per_second", 0, true, 1000, c.requests_per_second);
  t.read_number("requests_per_minute", 0, true, 60000, c.requests_per_minute);
  t.read_int("max_in_flight", 1, 64, c.max_in_flight);
  t.read_int("score_page_size", 1, 100, c.score_page_size);
  t.read_int("observation_page_size", 1, 1000, c.observation_page_size);
  std::size_t mib = c.max_response_bytes >> 20;
  t.read_int("max_response_mib", 1, 4096, mib);
  c.max_response_bytes = mib << 20;
  double big_mib = static_cast<double>(c.big_response_bytes) / (1 << 20);
  t.read_number("big_response_mib", 0, true, 4096, big_mib);
  c.big_response_bytes = static_cast<std::size_t>(big_mib * (1 << 20));
  t.read_duration("connect_timeout_seconds", Seconds(1), 1, 600, c.connect_timeout);
  t.read_duration("request_timeout_seconds", Seconds(1), 1, 24 * 3600, c.request_timeout);
  t.read_int("low_speed_bytes_per_second", 0, 1LL << 30, c.low_speed_bytes_per_second);
  t.read_duration("low_speed_time_seconds", Seconds(1), 1, 3600, c.low_speed_time);
  if (t.ok() && c.request_timeout < c.connect_timeout) {
    t.fail("request_timeout_seconds",
           fmt::format("must be at least {} ({} s): the request timeout includes the connect",
                       t.path("connect_timeout_seconds"), c.connect_timeout.count()));
  }
}

void read_retry(TableReader& t, Config& c) {
  t.read_duration("backoff_base_ms", std::chrono::milliseconds(1), 1, 600'000, c.backoff_base);
  t.read_duration("backoff_cap_seconds", Seconds(1), 1, 24 * 3600, c.backoff_cap);
  t.read_int("max_attempts", 1, 1000, c.max_attempts);
  t.read_int("breaker_failures", 1, 1000, c.breaker_failures);
  t.read_duration("breaker_probe_base_seconds", Seconds(1), 1, 3600, c.breaker_probe_base);
  t.read_duration("breaker_probe_cap_seconds", Seconds(1), 1, 24 * 3600, c.breaker_probe_cap);
  if (t.ok() && c.backoff_cap < c.backoff_base) {
    t.fail("backoff_cap_seconds", fmt::format("must not be less than {} ({} ms)",
                                              t.path("backoff_base_ms"), c.backoff_base.count()));
  }
  if (t.ok() && c.breaker_probe_cap < c.breaker_probe_base) {
    t.fail("breaker_probe_cap_seconds",
           fmt::format("must not be less than {} ({} s)", t.path("breaker_probe_base_seconds"),
                       c.breaker_probe_base.count()));
  }
}

void read_maintenance(TableReader& t, Config& c) {
  t.read_duration("rescan_interval_minutes", std::chrono::minutes(1), 1, 7 * 24 * 60,
                  c.rescan_interval);
  t.read_duration("rescan_window_days", std::chrono::days(1), 1, 365, c.rescan_window);
  t.read_duration("sweep_interval_hours", std::chrono::hours(1), 1, 30 * 24, c.sweep_interval);
  t.read_duration("settle_minutes", std::chrono::minutes(1), 0, 24 * 60, c.settle_time);
  t.read_number("budget_share", 0, false, 1, c.maintenance_share);
}

void read_store(TableReader& t, Config& c) {
  t.read_nonempty_string("database", c.database);
}

void read_log(TableReader& t, Config& c) {
  std::string level;
  t.read_string("level", level);
  if (!t.ok() || !t.has("level")) return;
  if (std::optional<std::string> problem = log_level_problem(level, c.log_level)) {
    t.fail("level", *problem);
  }
}

void read_metrics(TableReader& t, Config& c) {
  t.read_string("textfile", c.metrics_textfile);
  // node_exporter's textfile collector silently ignores any other name.
  if (t.ok() && !c.metrics_textfile.empty() && !c.metrics_textfile.ends_with(".prom")) {
    t.fail("textfile", fmt::format("must end in .prom, the only files node_exporter's textfile "
                                   "collector reads (got \"{}\")",
                                   c.metrics_textfile));
  }
}

bool is_export_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

void read_export(TableReader& t, ExportSpec& e) {
  t.check_keys(kExportSection);
  for (std::string_view required : {"name", "format", "out"}) {
    if (t.ok() && !t.has(required)) t.fail(required, "is required in every [[export]] table");
  }
  t.read_nonempty_string("name", e.name);
  if (t.ok() && !std::all_of(e.name.begin(), e.name.end(), is_export_name_char)) {
    t.fail("name",
           fmt::format("may contain only letters, digits, '-', '_' and '.' (got \"{}\")", e.name));
  }
  t.read_enum("format", kExportFormats, e.format);
  t.read_nonempty_string("out", e.out);
  read_score_names(t, e.score_names);
  t.read_label_list("values", e.values);
  std::string source = e.source;
  t.read_enum("source", kScoreSources, source, /*upper_case=*/true);
  e.source = source;
  constexpr double kLowest = std::numeric_limits<double>::lowest();
  constexpr double kHighest = std::numeric_limits<double>::max();
  t.read_number("min", kLowest, false, kHighest, e.min);
  t.read_number("max", kLowest, false, kHighest, e.max);
  if (t.ok() && e.min && e.max && *e.min > *e.max) {
    t.fail("max", fmt::format("must not be less than {} ({})", t.path("min"), *e.min));
  }
  t.read_timestamp("since", e.since);
  t.read_timestamp("until", e.until);
  // Canonical timestamps compare in time order as text.
  if (t.ok() && e.since && e.until && *e.since >= *e.until) {
    t.fail("until", fmt::format("must be later than {} ({})", t.path("since"), *e.since));
  }
  t.read_string_list("environments", e.environments);
  t.read_enum("pick", kPicks, e.pick);
  t.read_label("positive", e.positive);
  if (t.ok() && e.positive && e.format != "kto") {
    t.fail("positive", fmt::format("only applies to format \"kto\" (this export's format is "
                                   "\"{}\")",
                                   e.format));
  }
  t.read_bool("incremental", e.incremental);
  t.read_enum("sharegpt_dialect", kShareGptDialects, e.sharegpt_dialect);
  t.read_enum("repeated_answer", kTurnPolicies, e.repeated_answer);
  t.read_enum("non_alternating", kTurnPolicies, e.non_alternating);
  std::optional<double> max_bytes;
  t.read_number("max_record_bytes", 1, false, 1e15, max_bytes);
  if (max_bytes) e.max_record_bytes = static_cast<std::uint64_t>(*max_bytes);
  t.read_bool("drop_duplicates", e.drop_duplicates);
  t.read_number("validation_fraction", 0, true, 1, e.validation_fraction);
  if (t.ok() && e.validation_fraction && *e.validation_fraction >= 1) {
    t.fail("validation_fraction", "must be less than 1");
  }
}

Status read_exports(const toml::node& node, const std::string& file, Config& c) {
  const toml::array* array = node.as_array();
  if (!array || !array->is_array_of_tables()) {
    return config_error(file, "export",
                        "must be a list of tables, each written [[export]] (not [export])");
  }
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::table* table = (*array)[i].as_table();
    if (!table) return config_error(file, fmt::format("export[{}]", i), "must be a table");
    TableReader t(*table, file, fmt::format("export[{}].", i));
    ExportSpec spec;
    read_export(t, spec);
    for (std::size_t j = 0; j < c.exports.size() && t.ok(); ++j) {
      if (c.exports[j].name == spec.name) {
        t.fail("name", fmt::format("duplicate export name \"{}\" (also export[{}])", spec.name, j));
      }
    }
    if (!t.ok()) return t.status();
    c.exports.push_back(std::move(spec));
  }
  return Status::Ok();
}

Status apply_file(const std::string& file, Config& c, Provenance& p) {
  Result<std::string> content = read_small_file(file, kMaxConfigBytes);
  if (!content.ok()) return content.status();
  toml::table root;
  try {
    root = toml::parse(*content, file);
  } catch (const toml::parse_error& e) {
    return Status::Error(
        ErrorKind::kConfig,
        fmt::format("{}: syntax error at line {}, column {}: {}", file, e.source().begin.line,
                    e.source().begin.column, e.description()));
  }

  // Sections are read in a fixed order, whatever their order in the file, so the first error
  // reported does not depend on how the file is laid out.
  for (auto&& [toml_key, node] : root) {
    std::string_view key = toml_key.str();
    if (key == "export") continue;
    const SectionSpec* spec = nullptr;
    for (const SectionSpec& candidate : kSections) {
      if (candidate.name == key) spec = &candidate;
    }
    if (!spec) {
      if (key == "secret_key") return config_error(file, key, secret_in_file_reason());
      std::string hint;
      for (const SectionSpec& section : kSections) {
        if (contains(section.keys, key)) hint = fmt::format(" (it belongs in [{}])", section.name);
      }
      if (hint.empty()) {
        std::vector<std::string_view> names;
        for (const SectionSpec& section : kSections) names.push_back(section.name);
        names.push_back(kExportSection.name);
        hint = closest_hint(key, names);
      }
      return config_error(file, key, "unknown section or key" + hint);
    }
    if (!node.is_table()) {
      return config_error(
          file, key, fmt::format("must be a table, written [{}] (got {})", key, type_name(node)));
    }
  }

  for (const SectionSpec& spec : kSections) {
    const toml::table* table = root[spec.name].as_table();
    if (!table) continue;
    TableReader t(*table, file, fmt::format("{}.", spec.name));
    t.check_keys(spec);
    if (spec.name == "langfuse") read_langfuse(t, c, p, file);
    if (spec.name == "harvest") read_harvest(t, c);
    if (spec.name == "sync") read_sync(t, c);
    if (spec.name == "limits") read_limits(t, c);
    if (spec.name == "retry") read_retry(t, c);
    if (spec.name == "maintenance") read_maintenance(t, c);
    if (spec.name == "store") read_store(t, c);
    if (spec.name == "log") read_log(t, c);
    if (spec.name == "metrics") read_metrics(t, c);
    if (!t.ok()) return t.status();
  }
  if (const toml::node* exports = root.get("export")) {
    if (Status s = read_exports(*exports, file, c); !s.ok()) return s;
  }
  return Status::Ok();
}

// An empty variable counts as unset, as with the Langfuse SDKs: `LANGFUSE_HOST=` in a unit file
// or a container definition must not be an error.
std::optional<std::string> env_value(const EnvLookup& env, const std::string& name) {
  std::optional<std::string> value = env(name);
  if (value && value->empty()) return std::nullopt;
  return value;
}

std::string env_where(std::string_view name) {
  return fmt::format("environment: {}", name);
}

Status apply_env(const EnvLookup& env, Config& c, Provenance& p) {
  for (const char* name : {"LANGFUSE_HOST", "LANGFUSE_BASE_URL"}) {  // BASE_URL wins: last
    if (std::optional<std::string> value = env_value(env, name)) {
      c.base_url = *value;
      p.base_url_where = env_where(name);
    }
  }
  if (std::optional<std::string> value = env_value(env, "LANGFUSE_PUBLIC_KEY")) {
    if (std::optional<std::string> problem = public_key_problem(*value)) {
      return error_at(env_where("LANGFUSE_PUBLIC_KEY"), *problem);
    }
    c.public_key = *value;
  }
  if (std::optional<std::string> value = env_value(env, "LFHARVEST_DB")) {
    c.database = *value;
  }
  if (std::optional<std::string> value = env_value(env, "LFHARVEST_LOG_LEVEL")) {
    if (std::optional<std::string> problem = log_level_problem(*value, c.log_level)) {
      return error_at(env_where("LFHARVEST_LOG_LEVEL"), *problem);
    }
  }
  if (std::optional<std::string> value = env_value(env, "LFHARVEST_SECRET_KEY_FILE")) {
    p.secret_key_file = *value;
    p.secret_key_file_where = env_where("LFHARVEST_SECRET_KEY_FILE");
  }
  return Status::Ok();
}

Status apply_overrides(const ConfigOverrides& o, Config& c, Provenance& p) {
  if (o.base_url) {
    c.base_url = *o.base_url;
    p.base_url_where = "command line: --base-url";
  }
  if (o.database) {
    if (o.database->empty()) {
      return Status::Error(ErrorKind::kConfig, "command line: --db: must not be empty");
    }
    c.database = *o.database;
  }
  if (o.log_level) {
    if (std::optional<std::string> problem = log_level_problem(*o.log_level, c.log_level)) {
      return error_at("command line: --log-level", *problem);
    }
  }
  return Status::Ok();
}

Status finish_base_url(Config& c, const Provenance& p) {
  std::string where = p.base_url_where.empty() ? "default: langfuse.base_url" : p.base_url_where;
  Result<ParsedUrl> url = parse_base_url(c.base_url, where);
  if (!url.ok()) return url.status();
  if (url->scheme == "http" && !is_loopback_host(url->host) && !c.allow_insecure_http) {
    std::string setting =
        p.allow_insecure_where.empty()
            ? std::string("langfuse.allow_insecure_http = true in the config file")
            : fmt::format("langfuse.allow_insecure_http = true ({} is false)",
                          p.allow_insecure_where);
    return Status::Error(
        ErrorKind::kConfig,
        fmt::format("{}: http:// to {} would send the secret key across the network in clear "
                    "text; use https://, or set {} if the network is trusted",
                    where, url->host, setting));
  }
  c.base_url = url->normalized;
  return Status::Ok();
}

void finish_database(const EnvLookup& env, Config& c) {
  if (!c.database.empty()) return;
  // systemd sets STATE_DIRECTORY from StateDirectory=; several directories are ':'-separated and
  // the first is ours.
  std::optional<std::string> state = env_value(env, "STATE_DIRECTORY");
  std::string dir = state ? state->substr(0, state->find(':')) : std::string();
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  c.database = dir.empty() ? "./lfharvest.db" : fmt::format("{}/lfharvest.db", dir);
}

Status finish_secret(const EnvLookup& env, const Provenance& p, Config& c) {
  // 1. systemd credential. The file belongs to root (or the unit's user) with systemd's own
  //    permissions in a private, read-only mount that only this unit can see; the owner and mode
  //    checks would refuse the normal set-up, so only its type is checked.
  if (std::optional<std::string> dir = env_value(env, "CREDENTIALS_DIRECTORY")) {
    std::string path = fmt::format("{}/{}", *dir, kCredentialName);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 || errno != ENOENT) {
      Result<std::string> secret = read_secret(path, /*strict=*/false);
      if (!secret.ok()) {
        return Status::Error(
            ErrorKind::kConfig,
            fmt::format("{}: {}", env_where("CREDENTIALS_DIRECTORY"), secret.status().message()));
      }
      if (std::optional<std::string> problem = secret_problem(*secret)) {
        return error_at(path, *problem);
      }
      c.secret_key = std::move(*secret);
      c.secret_source = fmt::format("systemd credential {}", kCredentialName);
      return Status::Ok();
    }
  }
  // 2. A secret key file named in the config or the environment: must be readable when named.
  if (p.secret_key_file) {
    Result<std::string> secret = read_secret_file(*p.secret_key_file);
    if (!secret.ok()) {
      return Status::Error(ErrorKind::kConfig, fmt::format("{}: {}", p.secret_key_file_where,
                                                           secret.status().message()));
    }
    if (std::optional<std::string> problem = secret_problem(*secret)) {
      return error_at(*p.secret_key_file, *problem);
    }
    c.secret_key = std::move(*secret);
    c.secret_source = fmt::format("file {}", *p.secret_key_file);
    return Status::Ok();
  }
  // 3. The environment: convenient for a shell, visible in /proc/PID/environ to the same user.
  if (std::optional<std::string> secret = env_value(env, "LANGFUSE_SECRET_KEY")) {
    if (std::optional<std::string> problem = secret_problem(*secret)) {
      return error_at(env_where("LANGFUSE_SECRET_KEY"), *problem);
    }
    c.secret_key = std::move(*secret);
    c.secret_source = "environment LANGFUSE_SECRET_KEY";
    return Status::Ok();
  }
  return Status::Error(
      ErrorKind::kConfig,
      "no Langfuse secret key: give it in one of three ways: under systemd, "
      "LoadCredential=langfuse-secret-key:/path/to/file; or a file readable only by this user "
      "(chmod 600), named by langfuse.secret_key_file in the config file or by "
      "LFHARVEST_SECRET_KEY_FILE; or the LANGFUSE_SECRET_KEY environment variable");
}

Result<Config> load_layers(const ConfigOverrides& overrides, const EnvLookup& env,
                           const LoadOptions& options) {
  Config config;
  Provenance provenance;

  std::string file;
  if (overrides.config_path) {
    file = *overrides.config_path;
    if (file.empty()) {
      return Status::Error(ErrorKind::kConfig, "command line: --config: must not be empty");
    }
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
      return Status::Error(ErrorKind::kConfig,
                           fmt::format("command line: --config: {}: {}", file, errno_text(errno)));
    }
    config.config_origin = "--config";
  } else if (std::optional<std::string> named = env_value(env, "LFHARVEST_CONFIG")) {
    struct stat st {};
    if (::stat(named->c_str(), &st) != 0) {
      return Status::Error(ErrorKind::kConfig, fmt::format("environment: LFHARVEST_CONFIG: {}: {}",
                                                           *named, errno_text(errno)));
    }
    file = *named;
    config.config_origin = "$LFHARVEST_CONFIG";
  } else {
    for (const auto& [candidate, origin] : config_search_path(env, options)) {
      struct stat st {};
      // Only a missing file means "try the next"; any other problem with it is reported.
      if (::stat(candidate.c_str(), &st) == 0 || errno != ENOENT) {
        file = candidate;
        config.config_origin = origin;
        break;
      }
    }
  }
  if (!file.empty()) {
    if (Status s = apply_file(file, config, provenance); !s.ok()) return s;
    config.config_path = file;
  } else {
    config.config_origin.clear();
  }

  if (Status s = apply_env(env, config, provenance); !s.ok()) return s;
  if (Status s = apply_overrides(overrides, config, provenance); !s.ok()) return s;
  if (Status s = finish_base_url(config, provenance); !s.ok()) return s;
  finish_database(env, config);

  if (options.need_secret) {
    if (config.public_key.empty()) {
      return Status::Error(ErrorKind::kConfig,
                           "no Langfuse public key: set langfuse.public_key in the config file or "
                           "the LANGFUSE_PUBLIC_KEY environment variable");
    }
    if (Status s = finish_secret(env, provenance, config); !s.ok()) return s;
  }
  return config;
}

std::string scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.size() < kMinScrubbedSecretLength) continue;
    for (std::size_t pos = text.find(secret); pos != std::string::npos;
         pos = text.find(secret, pos + 3)) {
      text.replace(pos, secret.size(), "***");
    }
  }
  return text;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> config_search_path(const EnvLookup& env,
                                                                    const LoadOptions& options) {
  std::vector<std::pair<std::string, std::string>> out;
  if (options.search_user_paths) {
    // Absolute, so that `check` and the logs say which directory that was.
    std::error_code ec;
    const std::filesystem::path cwd = std::filesystem::current_path(ec);
    out.emplace_back(ec ? std::string("lfharvest.toml") : (cwd / "lfharvest.toml").string(),
                     "working directory");
    if (std::optional<std::string> xdg = env_value(env, "XDG_CONFIG_HOME")) {
      out.emplace_back(*xdg + "/lfharvest/lfharvest.toml", "$XDG_CONFIG_HOME");
    } else if (std::optional<std::string> home = env_value(env, "HOME")) {
      out.emplace_back(*home + "/.config/lfharvest/lfharvest.toml", "~/.config");
    }
  }
  if (!options.default_config_path.empty()) {
    out.emplace_back(options.default_config_path, "system default");
  }
  return out;
}

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  };
}

Result<Config> load_config(const ConfigOverrides& overrides, const EnvLookup& env,
                           const LoadOptions& options) {
  Result<Config> config = load_layers(overrides, env, options);
  if (config.ok()) return config;
  // Messages are built so as never to hold the secret; this is the second line of defence,
  // for a secret pasted into the wrong setting (e.g. an enum value echoed back).
  std::vector<std::string> secrets;
  if (std::optional<std::string> value = env_value(env, "LANGFUSE_SECRET_KEY")) {
    secrets.push_back(*value);
  }
  std::string message = scrub(config.status().message(), secrets);
  return Status::Error(config.status().kind(), std::move(message));
}

std::vector<std::string> config_file_keys() {
  std::vector<std::string> keys;
  for (const SectionSpec& spec : kSections) {
    for (std::string_view key : spec.keys) keys.push_back(fmt::format("{}.{}", spec.name, key));
  }
  for (std::string_view key : kExportSection.keys) {
    keys.push_back(fmt::format("{}.{}", kExportSection.name, key));
  }
  return keys;
}

Result<std::string> read_secret_file(const std::string& path) {
  return read_secret(path, /*strict=*/true);
}

}  // namespace lfh
