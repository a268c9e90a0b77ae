#include "app/app_support.h"
#include "app/commands.h"
#include "app/exit_codes.h"

namespace lfh {

int cmd_export(const CommonOptions& common, const ExportOptions& options) {
  (void)options;
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/false, &code);
  if (!config) return code;
  print_error("export: not wired yet");
  return kExitFailure;
}

}  // namespace lfh
