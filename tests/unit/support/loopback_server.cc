#include "support/loopback_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>

namespace lfh::test {
namespace {

constexpr std::size_t kMaxRequestHead = 64 * 1024;

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// Parses "GET /path HTTP/1.1\r\nName: value\r\n...\r\n\r\n"; false if malformed.
bool parse_head(std::string_view head, RecordedRequest& out) {
  std::size_t line_end = head.find("\r\n");
  if (line_end == std::string_view::npos) return false;
  std::string_view request_line = head.substr(0, line_end);
  std::size_t first_space = request_line.find(' ');
  std::size_t second_space = request_line.find(' ', first_space + 1);
  if (first_space == std::string_view::npos || second_space == std::string_view::npos) {
    return false;
  }
  out.method = std::string(request_line.substr(0, first_space));
  out.target = std::string(request_line.substr(first_space + 1, second_space - first_space - 1));
  std::size_t position = line_end + 2;
  while (position < head.size()) {
    std::size_t end = head.find("\r\n", position);
    if (end == std::string_view::npos || end == position) break;
    std::string_view line = head.substr(position, end - position);
    std::size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      out.headers.emplace_back(lower(trim(line.substr(0, colon))),
                               std::string(trim(line.substr(colon + 1))));
    }
    position = end + 2;
  }
  return true;
}

}  // namespace

const std::string* RecordedRequest::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

// ---- Responder ----

bool Responder::send_all(std::string_view data) {
  while (!data.empty()) {
    if (!server_.wait_for(fd_, POLLOUT, -1)) return false;
    ssize_t sent = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;  // the client went away
    }
    data.remove_prefix(static_cast<std::size_t>(sent));
    bytes_sent_ += static_cast<std::size_t>(sent);
    server_.bytes_sent_ += static_cast<std::size_t>(sent);
  }
  return true;
}

bool Responder::send_head(int status, const HeaderList& headers) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  for (const auto& [name, value] : headers) head += name + ": " + value + "\r\n";
  head += "Connection: close\r\n\r\n";
  return send_all(head);
}

bool Responder::pause(std::chrono::milliseconds duration) {
  pollfd wake{server_.wake_pipe_[0], POLLIN, 0};
  int ready = ::poll(&wake, 1, static_cast<int>(duration.count()));
  return ready == 0 && !server_.stopping();
}

void Responder::reply(int status, const HeaderList& headers, std::string_view body) {
  HeaderList all = headers;
  all.emplace_back("Content-Length", std::to_string(body.size()));
  if (send_head(status, all)) send_all(body);
}

void Responder::reply_truncated(int status, std::size_t declared_length,
                                std::string_view partial_body) {
  if (send_head(status, {{"Content-Length", std::to_string(declared_length)}})) {
    send_all(partial_body);
  }
}

void Responder::reply_chunked(int status, std::size_t total_bytes, std::size_t chunk_size) {
  if (!send_head(status, {{"Transfer-Encoding", "chunked"}})) return;
  chunk_size = std::max<std::size_t>(chunk_size, 1);
  const std::string full_chunk(chunk_size, 'x');
  std::size_t remaining = total_bytes;
  while (remaining > 0) {
    std::size_t size = std::min(remaining, chunk_size);
    char size_line[32];
    int length = std::snprintf(size_line, sizeof size_line, "%zx\r\n", size);
    if (!send_all(std::string_view(size_line, static_cast<std::size_t>(length))) ||
        !send_all(std::string_view(full_chunk.data(), size)) || !send_all("\r\n")) {
      return;
    }
    remaining -= size;
  }
  send_all("0\r\n\r\n");
}

void Responder::trickle(int status, std::string_view body, std::size_t bytes_per_step,
                        std::chrono::milliseconds step) {
  if (!send_head(status, {{"Content-Length", std::to_string(body.size())}})) return;
  bytes_per_step = std::max<std::size_t>(bytes_per_step, 1);
  while (!body.empty()) {
    std::size_t size = std::min(bytes_per_step, body.size());
    if (!send_all(body.substr(0, size))) return;
    body.remove_prefix(size);
    if (!body.empty() && !pause(step)) return;
  }
}

void Responder::hang() {
  char buffer[4096];
  while (server_.wait_for(fd_, POLLIN, -1)) {
    ssize_t received = ::recv(fd_, buffer, sizeof buffer, 0);
    if (received == 0) return;  // the client closed
    if (received < 0 && errno != EINTR && errno != EAGAIN) return;
  }
}

void Responder::reset() {
  reset_ = true;
}

void Responder::redirect(int status, std::string_view location) {
  reply(status, {{"Location", std::string(location)}}, "");
}

// ---- LoopbackServer ----

LoopbackServer::LoopbackServer(Handler handler) : handler_(std::move(handler)) {
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) fail("pipe2");
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    fail("bind");
  }
  if (::listen(listen_fd_, 64) != 0) fail("listen");
  socklen_t length = sizeof address;
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    fail("getsockname");
  }
  port_ = ntohs(address.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

LoopbackServer::~LoopbackServer() {
  stopping_ = true;
  // Never read: the pipe stays readable and wakes every poll() in every thread.
  [[maybe_unused]] ssize_t written = ::write(wake_pipe_[1], "x", 1);
  if (acceptor_.joinable()) acceptor_.join();
  for (std::thread& connection : connections_) connection.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

std::string LoopbackServer::origin() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::string LoopbackServer::url(std::string_view path) const {
  return origin() + std::string(path);
}

std::vector<RecordedRequest> LoopbackServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::size_t LoopbackServer::request_count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

bool LoopbackServer::wait_for(int fd, short events, int timeout_ms) const {
  pollfd fds[2] = {{fd, events, 0}, {wake_pipe_[0], POLLIN, 0}};
  while (true) {
    int ready = ::poll(fds, 2, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || fds[1].revents != 0 || stopping()) return false;
    return fds[0].revents != 0;  // includes POLLHUP/POLLERR: the next call reports them
  }
}

void LoopbackServer::accept_loop() {
  while (wait_for(listen_fd_, POLLIN, -1)) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(mu_);
    ++open_connections_;
    connections_.emplace_back([this, fd] { serve(fd); });
  }
}

void LoopbackServer::serve(int fd) {
  std::string head;
  char buffer[4096];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < kMaxRequestHead) {
    if (!wait_for(fd, POLLIN, -1)) break;
    ssize_t received = ::recv(fd, buffer, sizeof buffer, 0);
    if (received <= 0) break;
    head.append(buffer, static_cast<std::size_t>(received));
  }
  RecordedRequest request;
  if (head.find("\r\n\r\n") != std::string::npos && parse_head(head, request)) {
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
    }
    Responder responder(*this, fd);
    handler_(request, responder);
    if (responder.reset_) {
      linger abortive{1, 0};  // close() then sends RST instead of FIN
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
    } else {
      ::shutdown(fd, SHUT_WR);
    }
  }
  ::close(fd);
  {
    std::lock_guard lock(mu_);
    --open_connections_;
  }
  idle_.notify_all();
}

bool LoopbackServer::wait_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return idle_.wait_for(lock, timeout, [this] { return open_connections_ == 0; });
}

}  // namespace lfh::test
