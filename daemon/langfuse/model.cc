#include "langfuse/model.h"

namespace lfh {

const char* api_generation_name(ApiGeneration g) {
  switch (g) {
    case ApiGeneration::kCurrent:
      return "current";
    case ApiGeneration::kLegacy:
      return "legacy";
    case ApiGeneration::kUnknown:
      return "unknown";
  }
  return "unknown";
}

}  // namespace lfh
