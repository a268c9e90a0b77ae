#include "http/curl_http_client.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <climits>
#include <map>
#include <stop_token>
#include <string_view>

#include "core/log.h"
#include "core/version.h"
#include "http/curl_errors.h"
#include "http/redirect_policy.h"

namespace lfh {
namespace {

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* handle) const { curl_multi_cleanup(handle); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// How long one wait inside the transfer loop may last; a stop request also wakes it at once.
constexpr int kPollTimeoutMs = 100;

// curl_global_init is not thread-safe and must run once before any other libcurl call.
CURLcode global_init() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return result;
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Request headers that identify the caller; they never travel to another origin.
bool is_credential_header(std::string_view name) {
  std::string lowered = lower(name);
  return lowered == "authorization" || lowered == "proxy-authorization" || lowered == "cookie";
}

CurlHttpClientOptions with_defaults(CurlHttpClientOptions options) {
  if (options.user_agent.empty()) options.user_agent = std::string("lfharvest/") + kVersion;
  options.max_redirects = std::max(options.max_redirects, 0);
  return options;
}

// State shared with libcurl's callbacks during one hop.
struct Transfer {
  std::size_t max_body = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  std::string last_header;         // for obsolete folded continuation lines
  long long too_large_bytes = -1;  // >= 0: aborted for size, this many bytes announced or seen
  std::size_t header_bytes = 0;    // status line and headers as received
  std::size_t announced = 0;       // Content-Length of the final response (0: none)
  std::stop_token stop;
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& transfer = *static_cast<Transfer*>(user);
  const size_t length = size * count;
  std::string_view line(data, length);
  transfer.header_bytes += length;
  // A status line starts a new response (an interim 1xx came first): forget earlier headers.
  if (line.starts_with("HTTP/")) {
    transfer.headers.clear();
    transfer.last_header.clear();
    return length;
  }
  if ((line.starts_with(" ") || line.starts_with("\t")) && !transfer.last_header.empty()) {
    transfer.headers[transfer.last_header] += " " + std::string(trim(line));
    return length;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return length;
  std::string name = lower(trim(line.substr(0, colon)));
  std::string_view value = trim(line.substr(colon + 1));
  if (name == "content-length") {
    unsigned long long announced = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), announced);
    if (error == std::errc() && end == value.data() + value.size()) {
      if (announced > transfer.max_body) {
        // Refuse before the first body byte: returning a short count aborts the transfer.
        transfer.too_large_bytes = static_cast<long long>(
            std::min<unsigned long long>(announced, static_cast<unsigned long long>(LLONG_MAX)));
        return 0;
      }
      transfer.body.reserve(static_cast<size_t>(announced));
      transfer.announced = static_cast<size_t>(announced);
    }
  }
  transfer.headers[name] = std::string(value);
  transfer.last_header = std::move(name);
  return length;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto& transfer = *static_cast<Transfer*>(user);
  const size_t length = size * count;
  // Counted here because CURLOPT_MAXFILESIZE does not stop a chunked body on libcurl 7.88.
  if (length > transfer.max_body - transfer.body.size()) {
    transfer.too_large_bytes = static_cast<long long>(transfer.body.size() + length);
    return 0;
  }
  const size_t needed = transfer.body.size() + length;
  if (needed > transfer.body.capacity()) {
    // Small bodies grow geometrically. Past 1 MiB, reserve the whole cap at once: one mapping
    // whose untouched pages cost no memory, instead of copies at each doubling whose freed
    // buffers the allocator may keep (resident memory then tracks the bytes received).
    constexpr size_t kSmallBody = size_t{1} << 20;
    const size_t grown =
        needed > kSmallBody ? transfer.max_body : std::max(needed, transfer.body.capacity() * 2);
    transfer.body.reserve(std::min(transfer.max_body, grown));
  }
  transfer.body.append(data, length);
  return length;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto& transfer = *static_cast<const Transfer*>(user);
  return transfer.stop.stop_requested() ? 1 : 0;
}

}  // namespace

struct CurlHttpClient::Session {
  CurlMulti multi;
  CurlEasy easy;
};

struct CurlHttpClient::HopResult {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  std::size_t header_bytes = 0;
};

CurlHttpClient::CurlHttpClient(CurlHttpClientOptions options)
    : options_(with_defaults(std::move(options))) {
  (void)global_init();
}

CurlHttpClient::~CurlHttpClient() = default;

std::unique_ptr<CurlHttpClient::Session> CurlHttpClient::checkout() {
  {
    std::lock_guard lock(pool_mu_);
    if (!idle_.empty()) {
      auto session = std::move(idle_.back());
      idle_.pop_back();
      return session;
    }
  }
  auto session = std::make_unique<Session>();
  session->multi.reset(curl_multi_init());
  session->easy.reset(curl_easy_init());
  if (!session->multi || !session->easy) return nullptr;
  return session;
}

void CurlHttpClient::checkin(std::unique_ptr<Session> session) {
  std::lock_guard lock(pool_mu_);
  idle_.push_back(std::move(session));
}

Result<HttpResponse> CurlHttpClient::get(const HttpRequest& request, std::stop_token stop) {
  if (CURLcode init = global_init(); init != CURLE_OK) {
    return Status::Error(ErrorKind::kFatal,
                         std::string("libcurl initialisation failed: ") + curl_easy_strerror(init));
  }
  // Rejects other schemes and URLs with embedded credentials before anything is sent.
  if (Result<UrlOrigin> origin = http_origin(request.url); !origin.ok()) return origin.status();
  if (stop.stop_requested()) {
    return Status::Error(ErrorKind::kCancelled, "GET " + request.url + ": stop requested");
  }

  const auto started = std::chrono::steady_clock::now();
  const std::size_t max_body =
      request.max_body_bytes != 0 ? request.max_body_bytes : options_.max_body_bytes;

  std::unique_ptr<Session> session = checkout();
  if (!session) return Status::Error(ErrorKind::kFatal, "libcurl could not create a handle");
  // Back to the pool however this call ends.
  struct Return {
    CurlHttpClient& client;
    std::unique_ptr<Session>& session;
    ~Return() { client.checkin(std::move(session)); }
  } give_back{*this, session};

  std::string url = request.url;
  bool send_credentials = true;
  for (int hop = 0;; ++hop) {
    auto elapsed = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
    Millis time_left = options_.total_timeout - elapsed;
    if (time_left <= Millis(0)) {
      return Status::Error(
          ErrorKind::kRetryable,
          fmt::format("GET {}: timed out after {} ms (following redirects)", url, elapsed.count()));
    }
    Result<HopResult> hop_result =
        perform_hop(*session, request, url, send_credentials, max_body, time_left, stop);
    if (!hop_result.ok()) return hop_result.status();

    const std::string* location = nullptr;
    if (is_redirect(hop_result->status)) {
      auto it = hop_result->headers.find("location");
      if (it != hop_result->headers.end()) location = &it->second;
    }
    if (location == nullptr) {
      HttpResponse response;
      response.status = hop_result->status;
      response.headers = std::move(hop_result->headers);
      response.body = std::move(hop_result->body);
      response.wire_bytes = hop_result->header_bytes + response.body.size();
      response.elapsed_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      return response;
    }
    if (hop >= options_.max_redirects) {
      return Status::Error(ErrorKind::kConfig, fmt::format("GET {}: more than {} redirects",
                                                           request.url, options_.max_redirects));
    }
    Result<RedirectTarget> target = resolve_redirect(url, *location);
    if (!target.ok()) {
      return Status::Error(target.status().kind(),
                           log::redact("GET " + url + ": " + target.status().message()));
    }
    // Once the chain has left the original origin, credentials stay behind even if it returns.
    if (!target->same_origin) send_credentials = false;
    log::debug("GET {}: following redirect {} to {}{}", url, hop_result->status, target->url,
               target->same_origin ? "" : " (without credentials)");
    url = std::move(target->url);
  }
}

Result<CurlHttpClient::HopResult> CurlHttpClient::perform_hop(
    Session& session, const HttpRequest& request, const std::string& url, bool send_credentials,
    std::size_t max_body, Millis time_left, std::stop_token stop) {
  CURL* easy = session.easy.get();
  CURLM* multi = session.multi.get();
  // reset() clears every option (credentials of the previous call included) but keeps the
  // connection, DNS and TLS session caches.
  curl_easy_reset(easy);

  Transfer transfer;
  transfer.max_body = max_body;
  transfer.stop = stop;
  std::array<char, CURL_ERROR_SIZE> error_buffer{};

  CurlSlist header_list;
  for (const auto& [name, value] : request.headers) {
    if (!send_credentials && is_credential_header(name)) continue;
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return Status::Error(
          ErrorKind::kConfig,
          fmt::format("GET {}: request header '{}' is malformed", url,
                      name.find_first_of("\r\n") == std::string::npos ? name : "?"));
    }
    std::string line = name + ": " + value;
    curl_slist* extended = curl_slist_append(header_list.get(), line.c_str());
    if (extended == nullptr) return Status::Error(ErrorKind::kFatal, "out of memory");
    (void)header_list.release();
    header_list.reset(extended);
  }

  CURLcode setup = CURLE_OK;
  auto set = [&](CURLoption option, auto value) {
    if (setup == CURLE_OK) setup = curl_easy_setopt(easy, option, value);
  };
  set(CURLOPT_URL, url.c_str());
  set(CURLOPT_HTTPGET, 1L);
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) set(CURLOPT_CAINFO, options_.ca_file.c_str());
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(time_left.count()));
  set(CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_limit_bytes_per_s);
  set(CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.low_speed_time.count()));
  set(CURLOPT_USERAGENT, options_.user_agent.c_str());
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  set(CURLOPT_ERRORBUFFER, error_buffer.data());
  if (header_list) set(CURLOPT_HTTPHEADER, header_list.get());
  if (send_credentials && (!request.basic_user.empty() || !request.basic_password.empty())) {
    set(CURLOPT_HTTPAUTH, static_cast<unsigned long>(CURLAUTH_BASIC));
    set(CURLOPT_USERNAME, request.basic_user.c_str());
    set(CURLOPT_PASSWORD, request.basic_password.c_str());
  }
  set(CURLOPT_HEADERFUNCTION, &on_header);
  set(CURLOPT_HEADERDATA, static_cast<void*>(&transfer));
  set(CURLOPT_WRITEFUNCTION, &on_body);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&transfer));
  set(CURLOPT_NOPROGRESS, 0L);
  set(CURLOPT_XFERINFOFUNCTION, &on_progress);
  set(CURLOPT_XFERINFODATA, static_cast<void*>(&transfer));
  if (setup != CURLE_OK) {
    return Status::Error(ErrorKind::kFatal, fmt::format("GET {}: libcurl setup failed: {}", url,
                                                        curl_easy_strerror(setup)));
  }

  if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
    return Status::Error(ErrorKind::kFatal, "GET " + url + ": libcurl could not start a transfer");
  }
  bool finished = false;
  bool cancelled = false;
  CURLcode result = CURLE_OK;
  CURLMcode multi_error = CURLM_OK;
  {
    // Wakes curl_multi_poll at once when stop is requested from another thread.
    std::stop_callback wake(stop, [multi] { curl_multi_wakeup(multi); });
    while (!finished) {
      int running = 0;
      multi_error = curl_multi_perform(multi, &running);
      if (multi_error != CURLM_OK) break;
      int queued = 0;
      while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
        if (message->msg == CURLMSG_DONE && message->easy_handle == easy) {
          result = message->data.result;
          finished = true;
        }
      }
      if (finished) break;
      if (stop.stop_requested()) {
        cancelled = true;
        break;
      }
      multi_error = curl_multi_poll(multi, nullptr, 0, kPollTimeoutMs, nullptr);
      if (multi_error != CURLM_OK) break;
    }
  }
  curl_multi_remove_handle(multi, easy);

  if (cancelled || (result == CURLE_ABORTED_BY_CALLBACK && stop.stop_requested())) {
    return Status::Error(ErrorKind::kCancelled, "GET " + url + ": stop requested");
  }
  if (multi_error != CURLM_OK) {
    return Status::Error(ErrorKind::kRetryable, fmt::format("GET {}: libcurl multi error: {}", url,
                                                            curl_multi_strerror(multi_error)));
  }
  if (transfer.too_large_bytes >= 0) {
    return Status::Error(ErrorKind::kTooLarge,
                         fmt::format("GET {}: response exceeded the cap of {} bytes ({} bytes)",
                                     url, max_body, transfer.too_large_bytes))
        .with_detail(transfer.too_large_bytes);
  }
  if (result != CURLE_OK) {
    // What the server had serialised for us when the connection broke: a response cut off
    // mid-body still tells its size (HttpClient: detail of a transport error). Nothing back:
    // the detail stays libcurl's code (refused, timed out, TLS), which the commands act on.
    const std::size_t seen =
        transfer.header_bytes + std::max(transfer.body.size(), transfer.announced);
    Status status = curl_transport_status(result, error_buffer.data(), url);
    if (seen > 0) status.with_detail(static_cast<long long>(seen));
    return status;
  }

  HopResult hop;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &hop.status);
  hop.headers = std::move(transfer.headers);
  hop.body = std::move(transfer.body);
  hop.header_bytes = transfer.header_bytes;
  return hop;
}

}  // namespace lfh
