// The checkout's root directory, for tests that read files under configs/, examples/ or data/.
//
// Test sources spell it GIMBAL_SOURCE_DIR, which the build defines as a call to SourceDir() for
// every test executable (gimbal_add_tests, top-level CMakeLists.txt). The path itself is compiled
// into source_dir.cc alone, so a clone of the repository in another folder recompiles that one
// file and takes every test source from the compiler cache (docs/development.md).
#pragma once

namespace gimbal::test_support {

// The absolute path of the source tree the tests were built from; never null, never empty.
const char* SourceDir();

}  // namespace gimbal::test_support
