// Renders a StatusSnapshot for people (text), for scripts (JSON) and for Prometheus (text
// exposition format). Pure functions: no I/O, no secrets in the input.
#pragma once

#include <string>

#include "store/status_queries.h"

namespace lfh {

std::string render_status_text(const StatusSnapshot& s);
std::string render_status_json(const StatusSnapshot& s);
std::string render_prometheus(const StatusSnapshot& s);

}  // namespace lfh
