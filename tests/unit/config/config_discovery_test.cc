#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "config/config.h"
#include "support/temp_dir.h"

namespace lfh {
namespace {

EnvLookup env_from(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

std::string write(const std::filesystem::path& path, int max_in_flight) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << "[limits]\nmax_in_flight = " << max_in_flight << "\n";
  return path.string();
}

}  // namespace

TEST_CASE("config discovery: $LFHARVEST_CONFIG, then $XDG_CONFIG_HOME, then ~/.config, then /etc") {
  testing::TempDir dir;
  LoadOptions options;
  options.need_secret = false;
  options.default_config_path = write(dir.path() / "etc" / "lfharvest.toml", 1);
  const std::string xdg = (dir.path() / "xdg").string();
  const std::string xdg_file = write(dir.path() / "xdg" / "lfharvest" / "lfharvest.toml", 2);
  const std::string home_file =
      write(dir.path() / "home" / ".config" / "lfharvest" / "lfharvest.toml", 3);
  const std::string named = write(dir.path() / "named.toml", 4);
  const std::string home = (dir.path() / "home").string();

  auto load = [&](std::map<std::string, std::string> env) {
    auto c = load_config({}, env_from(std::move(env)), options);
    REQUIRE(c.ok());
    return std::move(c).value();
  };
  Config c = load({{"LFHARVEST_CONFIG", named}, {"XDG_CONFIG_HOME", xdg}, {"HOME", home}});
  CHECK(c.config_path == named);
  CHECK(c.config_origin == "$LFHARVEST_CONFIG");
  CHECK(c.max_in_flight == 4);
  c = load({{"XDG_CONFIG_HOME", xdg}, {"HOME", home}});
  CHECK(c.config_path == xdg_file);
  CHECK(c.config_origin == "$XDG_CONFIG_HOME");
  c = load({{"HOME", home}});
  CHECK(c.config_path == home_file);
  CHECK(c.config_origin == "~/.config");
  c = load({});
  CHECK(c.config_path == options.default_config_path);
  CHECK(c.config_origin == "system default");

  ConfigOverrides flag;
  flag.config_path = named;
  auto flagged = load_config(flag, env_from({{"XDG_CONFIG_HOME", xdg}}), options);
  REQUIRE(flagged.ok());
  CHECK(flagged->config_origin == "--config");

  auto missing = load_config(
      {}, env_from({{"LFHARVEST_CONFIG", (dir.path() / "nope.toml").string()}}), options);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().kind() == ErrorKind::kConfig);
  CHECK(missing.status().message().find("LFHARVEST_CONFIG") != std::string::npos);
}

TEST_CASE("the search path lists the working directory first, absolute") {
  LoadOptions options;
  auto path = config_search_path(env_from({{"XDG_CONFIG_HOME", "/x"}}), options);
  REQUIRE(path.size() == 3);
  CHECK(std::filesystem::path(path[0].first).is_absolute());
  CHECK(path[0].second == "working directory");
  CHECK(path[1].first == "/x/lfharvest/lfharvest.toml");
  CHECK(path[2].first == "/etc/lfharvest/lfharvest.toml");
  options.search_user_paths = false;
  CHECK(config_search_path(env_from({}), options).size() == 1);
}

}  // namespace lfh
