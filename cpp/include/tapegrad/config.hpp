// Settings read from the environment when the library loads (TAPEGRAD_ISA,
// TAPEGRAD_CACHE_LIMIT_MB). A value that does not parse falls back to the
// default and leaves a message here, which the module's import turns into one
// Python RuntimeWarning: at load time there is no interpreter to warn through.
#pragma once

#include <string>
#include <vector>

namespace tg {

void note_config_warning(std::string message);
std::vector<std::string> take_config_warnings();

}  // namespace tg
