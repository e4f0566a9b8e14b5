# Build speed without changing what is built (docs/development.md):
# - ccache, when installed, caches every compilation. Paths under the checkout are hashed relative
#   to it and the working directory is left out (base_dir, hash_dir), so a fresh clone in another
#   folder (CI's) hits the objects a build in the working copy left; the compiler flags, and so the
#   binaries, are the same.
#   Set here, they hold for every build of the project, not only scripts/run-tests.sh's.
# - mold, when installed, links (GCC 12 takes -fuse-ld=mold); the test executables link the
#   whole project each, and mold links them several times faster than GNU ld.
# GIMBAL_CCACHE=OFF or GIMBAL_MOLD=OFF turn either off.
option(GIMBAL_CCACHE "Compile through ccache when it is installed" ON)
option(GIMBAL_MOLD "Link with mold when it is installed (GCC >= 12)" ON)

if(GIMBAL_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(GIMBAL_CCACHE_PROGRAM ccache)
  if(GIMBAL_CCACHE_PROGRAM)
    set(CMAKE_CXX_COMPILER_LAUNCHER
        ${CMAKE_COMMAND} -E env CCACHE_BASEDIR=${PROJECT_SOURCE_DIR} CCACHE_NOHASHDIR=true
        ${GIMBAL_CCACHE_PROGRAM})
  endif()
endif()

if(GIMBAL_MOLD AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU"
   AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12.1)
  find_program(GIMBAL_MOLD_PROGRAM mold)
  if(GIMBAL_MOLD_PROGRAM)
    add_link_options(-fuse-ld=mold)
  endif()
endif()

