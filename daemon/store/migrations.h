// Schema migrations embedded from schema/NNNN_name.sql at build time.
#pragma once

#include <span>

namespace lfh {

struct Migration {
  int version;       // NNNN: 1, 2, ... without gaps
  const char* name;  // the file name after the number
  const char* sql;   // the statements of that step
};

/// Every migration the program knows, ordered by version.
std::span<const Migration> embedded_migrations();

}  // namespace lfh
