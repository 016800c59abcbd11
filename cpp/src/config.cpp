#include "tapegrad/config.hpp"

#include <mutex>
#include <utility>

namespace tg {

namespace {
// Function-local statics: the readers run during static initialization of
// other files, in an order C++ leaves unspecified.
std::mutex& warnings_mutex() {
  static std::mutex m;
  return m;
}
std::vector<std::string>& warnings() {
  static std::vector<std::string> w;
  return w;
}
}  // namespace

void note_config_warning(std::string message) {
  std::lock_guard<std::mutex> lock(warnings_mutex());
  warnings().push_back(std::move(message));
}

std::vector<std::string> take_config_warnings() {
  std::lock_guard<std::mutex> lock(warnings_mutex());
  return std::exchange(warnings(), {});
}

}  // namespace tg
