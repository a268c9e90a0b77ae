// Streaming SHA-256 (OpenSSL libcrypto EVP) for export files and per-record content hashes.
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace lfh {

/// Feed bytes with update(), read the digest once with hex_digest(). Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(std::string_view data);
  /// Lower-case hex of the digest of everything fed so far; the hasher then starts over.
  std::string hex_digest();

  /// One-shot helper.
  static std::string of(std::string_view data);

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

}  // namespace lfh
