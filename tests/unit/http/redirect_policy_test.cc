#include "http/redirect_policy.h"

#include <doctest/doctest.h>

namespace lfh {

TEST_CASE("http_origin extracts scheme, lower-cased host and port") {
  Result<UrlOrigin> cloud = http_origin("https://Cloud.Langfuse.com/api/public/health");
  REQUIRE(cloud.ok());
  CHECK(cloud->scheme == "https");
  CHECK(cloud->host == "cloud.langfuse.com");
  CHECK(cloud->port == 443);

  Result<UrlOrigin> local = http_origin("http://127.0.0.1:3000/x?y=1");
  REQUIRE(local.ok());
  CHECK(local->port == 3000);
  CHECK(http_origin("http://localhost/")->port == 80);
}

TEST_CASE("http_origin refuses other schemes, garbage and embedded credentials") {
  CHECK(http_origin("ftp://example.com/file").status().kind() == ErrorKind::kConfig);
  CHECK(http_origin("file:///etc/passwd").status().kind() == ErrorKind::kConfig);
  CHECK(http_origin("not a url").status().kind() == ErrorKind::kConfig);
  CHECK(http_origin("").status().kind() == ErrorKind::kConfig);

  Result<UrlOrigin> with_secret = http_origin("https://pk-lf-1:sk-lf-canary@example.com/");
  CHECK(with_secret.status().kind() == ErrorKind::kConfig);
  CHECK(with_secret.status().message().find("sk-lf-canary") == std::string::npos);
  CHECK(with_secret.status().message().find("credentials") != std::string::npos);
}

TEST_CASE("relative redirects stay on the same origin") {
  Result<RedirectTarget> absolute_path =
      resolve_redirect("http://127.0.0.1:3000/a/b?c=1", "/next?x=1");
  REQUIRE(absolute_path.ok());
  CHECK(absolute_path->url == "http://127.0.0.1:3000/next?x=1");
  CHECK(absolute_path->same_origin);

  Result<RedirectTarget> relative = resolve_redirect("http://127.0.0.1:3000/a/b", "c");
  REQUIRE(relative.ok());
  CHECK(relative->url == "http://127.0.0.1:3000/a/c");
  CHECK(relative->same_origin);
}

TEST_CASE("origin comparison: scheme, host and port all count") {
  CHECK(resolve_redirect("https://h.example/x", "https://H.EXAMPLE:443/y")->same_origin);
  CHECK_FALSE(resolve_redirect("https://h.example/x", "https://other.example/y")->same_origin);
  CHECK_FALSE(resolve_redirect("https://h.example/x", "https://h.example:8443/y")->same_origin);
  CHECK_FALSE(resolve_redirect("http://127.0.0.1:3000/", "http://localhost:3000/")->same_origin);
  // An upgrade is allowed but is another origin: credentials are not carried over.
  Result<RedirectTarget> upgrade = resolve_redirect("http://h.example/x", "https://h.example/x");
  REQUIRE(upgrade.ok());
  CHECK_FALSE(upgrade->same_origin);
}

TEST_CASE("redirects that downgrade, leave http(s) or carry credentials are refused") {
  Result<RedirectTarget> downgrade = resolve_redirect("https://h.example/x", "http://h.example/x");
  CHECK(downgrade.status().kind() == ErrorKind::kConfig);
  CHECK(downgrade.status().message().find("https to http") != std::string::npos);
  CHECK(resolve_redirect("https://h.example/x", "ftp://h.example/x").status().kind() ==
        ErrorKind::kConfig);
  CHECK(resolve_redirect("https://h.example/x", "https://u:p@h.example/x").status().kind() ==
        ErrorKind::kConfig);
  CHECK(resolve_redirect("ftp://h.example/x", "/y").status().kind() == ErrorKind::kConfig);
}

}  // namespace lfh
