#include "app/cli.h"

int main(int argc, char** argv) {
  return lfh::run_cli(argc, argv);
}
