#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "core/log.h"

int main(int argc, char** argv) {
  // Keep the test output readable: only warnings and errors from the code under test.
  lfh::log::init(lfh::log::Level::kWarn);
  doctest::Context context(argc, argv);
  return context.run();
}
