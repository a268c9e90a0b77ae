// A tiny scriptable HTTP/1.1 server on 127.0.0.1 (port chosen by the kernel) for transport tests.
//
// Each connection gets its own thread, serves exactly one request and closes ("Connection:
// close"). The handler decides how to misbehave through the Responder. Every request is recorded
// (method, target, headers) before the handler runs, so tests can assert what a client sent,
// e.g. that no Authorization header reached a redirect target. The destructor wakes every
// blocked connection (hang, trickle, slow client) and joins all threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace lfh::test {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct RecordedRequest {
  std::string method;
  std::string target;  // path and query as sent
  HeaderList headers;  // names lower-cased, in arrival order

  /// First header with that (lower-case) name, or nullptr.
  const std::string* header(std::string_view lower_name) const;
};

class LoopbackServer;

/// Writes one response on one connection. Call one method once; the connection closes after the
/// handler returns. All methods stop early (quietly) when the client goes away or the server
/// stops.
class Responder {
 public:
  /// A complete response with Content-Length.
  void reply(int status, const HeaderList& headers, std::string_view body);
  /// Announces Content-Length `declared_length`, sends only `partial_body`, then closes.
  void reply_truncated(int status, std::size_t declared_length, std::string_view partial_body);
  /// Chunked body of `total_bytes` bytes generated on the fly, `chunk_size` bytes a chunk.
  void reply_chunked(int status, std::size_t total_bytes, std::size_t chunk_size = 64 * 1024);
  /// Headers (with Content-Length) at once, then the body `bytes_per_step` bytes every `step`.
  void trickle(int status, std::string_view body, std::size_t bytes_per_step,
               std::chrono::milliseconds step);
  /// Reads the request and never answers; returns when the client closes or the server stops.
  void hang();
  /// Closes the connection with a TCP reset, without a response.
  void reset();
  /// `status` (301/302/303/307/308) with a Location header.
  void redirect(int status, std::string_view location);

  /// Body and header bytes written so far on this connection.
  std::size_t bytes_sent() const { return bytes_sent_; }

 private:
  friend class LoopbackServer;
  Responder(LoopbackServer& server, int fd) : server_(server), fd_(fd) {}
  bool send_all(std::string_view data);
  bool send_head(int status, const HeaderList& headers);
  bool pause(std::chrono::milliseconds duration);  // false when the server stops

  LoopbackServer& server_;
  int fd_;
  std::size_t bytes_sent_ = 0;
  bool reset_ = false;
};

class LoopbackServer {
 public:
  using Handler = std::function<void(const RecordedRequest&, Responder&)>;

  /// Binds 127.0.0.1:0 and starts serving. Throws std::system_error if the socket cannot be set up.
  explicit LoopbackServer(Handler handler);
  ~LoopbackServer();
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  int port() const { return port_; }
  /// "http://127.0.0.1:<port>"
  std::string origin() const;
  /// origin() + path (path starts with '/').
  std::string url(std::string_view path) const;

  std::vector<RecordedRequest> requests() const;
  std::size_t request_count() const;
  /// Bytes written by all responders so far.
  std::size_t bytes_sent() const { return bytes_sent_.load(); }
  /// Blocks until no connection is open (every handler has returned), at most `timeout`.
  /// Returns false on timeout. Lets a test read final counters after the client went away.
  bool wait_idle(std::chrono::milliseconds timeout) const;

 private:
  friend class Responder;
  void accept_loop();
  void serve(int fd);
  // Waits until fd has `events` or the server stops; false on stop or timeout.
  bool wait_for(int fd, short events, int timeout_ms) const;
  bool stopping() const { return stopping_.load(); }

  Handler handler_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> bytes_sent_{0};

  mutable std::mutex mu_;
  mutable std::condition_variable idle_;
  int open_connections_ = 0;
  std::vector<RecordedRequest> requests_;
  std::vector<std::thread> connections_;
  std::thread acceptor_;
};

}  // namespace lfh::test
