# `cmake --install BUILD [--prefix DIR]` (docs/install.md): a self-contained Gimbal under DIR.
#
#   DIR/bin/gimbal                      the command-line tool
#   DIR/share/gimbal/data/              the catalogue (models, GPUs, topologies)
#   DIR/share/gimbal/report.py          the plotting half of `gimbal report`
#   DIR/share/gimbal/configs/           the example scenarios, experiment suites and router configs
#   DIR/share/doc/gimbal/               README.md and docs/ (so README's links resolve)
#
# The installed binary needs neither the checkout nor environment variables: it reads the data
# under ../share/gimbal/data when GIMBAL_DATA_DIR is unset (src/cli/main.cc) and runs
# ../share/gimbal/report.py (experiment::FindReportScript). Those relative paths are fixed, so the
# layout here is too (not CMAKE_INSTALL_DATADIR). tests/install/install_test.sh checks all of it.
# Only the gimbal binary is installed: tests, benchmarks and fuzz targets stay in the build tree.
set(GIMBAL_INSTALL_SHARE share/gimbal)

install(TARGETS gimbal RUNTIME DESTINATION bin)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/data/ DESTINATION ${GIMBAL_INSTALL_SHARE}/data
        FILES_MATCHING PATTERN "*.yaml" PATTERN "*.md")
install(PROGRAMS ${PROJECT_SOURCE_DIR}/scripts/report.py DESTINATION ${GIMBAL_INSTALL_SHARE})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${GIMBAL_INSTALL_SHARE}/configs
        FILES_MATCHING PATTERN "*.yaml")
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/gimbal)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs DESTINATION share/doc/gimbal
        FILES_MATCHING PATTERN "*.md")
