#include "langfuse/langfuse_client.h"

#include <utility>

#include "core/log.h"
#include "core/time_format.h"

namespace lfh {
namespace {

ApiGeneration other_generation(ApiGeneration g) {
  return g == ApiGeneration::kLegacy ? ApiGeneration::kCurrent : ApiGeneration::kLegacy;
}

bool is_query_timeout(const Status& status) {
  return !status.ok() && status.kind() == ErrorKind::kRetryable && status.detail() == 422;
}

// Bounds the query to start times around its anchor; false when it has no usable anchor or
// already carries bounds of its own.
bool bound_around_anchor(ObservationQuery& query) {
  if (!query.anchor_time || query.from_start_time || query.to_start_time) return false;
  auto anchor = parse_iso8601(*query.anchor_time);
  if (!anchor) return false;
  query.from_start_time = format_iso8601(*anchor - kAnchorBefore);
  query.to_start_time = format_iso8601(*anchor + kAnchorAfter);
  return true;
}

}  // namespace

LangfuseClient::LangfuseClient(HttpClient& http, const Clock& clock, LangfuseClientOptions options)
    : transport_(std::make_unique<ApiTransport>(http, clock, options)),
      owned_current_(std::make_unique<CurrentApi>(*transport_)),
      owned_legacy_(std::make_unique<LegacyApi>(*transport_)),
      current_(*owned_current_),
      legacy_(*owned_legacy_),
      pinned_(options.generation),
      scores_generation_(options.generation),
      observations_generation_(options.generation) {}

LangfuseClient::LangfuseClient(LangfuseApi& current, LangfuseApi& legacy, ApiGeneration pinned)
    : current_(current),
      legacy_(legacy),
      pinned_(pinned),
      scores_generation_(pinned),
      observations_generation_(pinned) {}

void LangfuseClient::set_generation(ApiGeneration g) {
  scores_generation_.store(g);
  observations_generation_.store(g);
}

Result<ServerInfo> LangfuseClient::health(std::stop_token stop) {
  auto info = current_.health(std::move(stop));
  if (info.ok() && pinned_ == ApiGeneration::kUnknown &&
      info->generation != ApiGeneration::kUnknown) {
    for (auto* generation : {&scores_generation_, &observations_generation_}) {
      ApiGeneration expected = ApiGeneration::kUnknown;
      generation->compare_exchange_strong(expected, info->generation);
    }
  }
  return info;
}

Result<ProjectInfo> LangfuseClient::project(std::stop_token stop) {
  return current_.project(std::move(stop));
}

template <typename Page, typename Call>
Result<Page> LangfuseClient::with_fallback(std::atomic<ApiGeneration>& generation,
                                           Fallback fallback, const char* endpoint, Call call) {
  const ApiGeneration known = generation.load();
  const ApiGeneration first = known == ApiGeneration::kUnknown ? ApiGeneration::kCurrent : known;
  Result<Page> result = call(adapter(first), /*drop_cursor=*/false);
  const bool not_found = !result.ok() && result.status().kind() == ErrorKind::kNotFound;
  if (!not_found || fallback == Fallback::kNever) {
    if (result.ok() && known == ApiGeneration::kUnknown) {
      ApiGeneration expected = ApiGeneration::kUnknown;
      generation.compare_exchange_strong(expected, first);
    }
    return result;
  }
  const ApiGeneration second = other_generation(first);
  log::info("the {} {} API answered HTTP {} ({}); trying the {} API", api_generation_name(first),
            endpoint, result.status().detail(), result.status().message(),
            api_generation_name(second));
  Result<Page> retry = call(adapter(second), /*drop_cursor=*/true);
  if (retry.ok()) {
    generation.store(second);
    log::info("using the {} Langfuse API for {} from now on", api_generation_name(second),
              endpoint);
  }
  return retry;
}

Result<ScorePage> LangfuseClient::scores(const ScoreQuery& query, std::stop_token stop) {
  const Fallback fallback =
      pinned_ == ApiGeneration::kUnknown ? Fallback::kOnNotFound : Fallback::kNever;
  return with_fallback<ScorePage>(scores_generation_, fallback, "scores",
                                  [&](LangfuseApi& api, bool drop_cursor) {
                                    if (!drop_cursor) return api.scores(query, stop);
                                    ScoreQuery fresh = query;
                                    fresh.cursor.reset();
                                    return api.scores(fresh, stop);
                                  });
}

Result<ObservationPage> LangfuseClient::observations(const ObservationQuery& query,
                                                     std::stop_token stop) {
  const Fallback fallback =
      pinned_ == ApiGeneration::kLegacy ? Fallback::kNever : Fallback::kOnNotFound;
  auto fetch = [&](const ObservationQuery& q) {
    return with_fallback<ObservationPage>(observations_generation_, fallback, "observations",
                                          [&](LangfuseApi& api, bool drop_cursor) {
                                            if (!drop_cursor) return api.observations(q, stop);
                                            ObservationQuery fresh = q;
                                            fresh.cursor.reset();
                                            return api.observations(fresh, stop);
                                          });
  };
  ObservationQuery bounded = query;
  if (bound_observations_.load() && bound_around_anchor(bounded)) return fetch(bounded);
  auto page = fetch(query);
  if (page.ok() || !is_query_timeout(page.status()) || !bound_around_anchor(bounded)) return page;
  if (!bound_observations_.exchange(true)) {
    log::warn(
        "the server timed out on an observation query ({}); bounding observation queries to "
        "start times from {} days before to {} day after each trace's first score",
        page.status().message(), kAnchorBefore.count() / 24, kAnchorAfter.count() / 24);
  }
  return fetch(bounded);
}

}  // namespace lfh
