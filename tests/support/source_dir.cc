#include "source_dir.h"

#ifndef GIMBAL_SOURCE_DIR_PATH
#error "GIMBAL_SOURCE_DIR_PATH must name the source tree (top-level CMakeLists.txt)"
#endif

namespace gimbal::test_support {

const char* SourceDir() {
  return GIMBAL_SOURCE_DIR_PATH;
}

}  // namespace gimbal::test_support
