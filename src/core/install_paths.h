// Where an installed gimbal keeps its shared files (cmake/Install.cmake): PREFIX/bin/gimbal beside
// PREFIX/share/gimbal/{data,configs,report.py}. Every lookup of an installed file starts here.
#pragma once

#include <string>

namespace gimbal {

// PREFIX/share/gimbal for the running executable (read from /proc/self/exe once, then kept),
// normalized; empty when that folder does not exist (a binary in a build tree).
const std::string& InstalledShareDir();

}  // namespace gimbal
