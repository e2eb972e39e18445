// `sluice sync`: the multi-cluster control plane that turns ServiceExports into ServiceImports.
// cli/main.cpp hands it the command line when the first argument is "sync".
#pragma once

namespace sluice::sync {

// argv[0] is "sync". Returns the process exit code: 0 after SIGTERM/SIGINT or a good --check,
// 1 on configuration or startup errors, 2 on bad flags. Runs on the calling thread.
int run_cli(int argc, char** argv);

}  // namespace sluice::sync
