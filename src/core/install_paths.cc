#include "core/install_paths.h"

#include <filesystem>
#include <system_error>

namespace gimbal {

const std::string& InstalledShareDir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return std::string();
    const fs::path share = (exe.parent_path() / ".." / "share" / "gimbal").lexically_normal();
    return fs::is_directory(share, ec) ? share.string() : std::string();
  }();
  return dir;
}

}  // namespace gimbal
