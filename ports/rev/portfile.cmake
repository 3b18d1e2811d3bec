# Overlay port of rev: builds the package from the repository this port lives in, so that
#   vcpkg install rev --overlay-ports=<repository>/ports
# installs the working tree as it is. (A port for a registry would instead fetch a release with
# vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH REPO <owner>/rev REF "v${VERSION}" SHA512 <sha>);
# the rest of this file stays the same.)
#
# vcpkg's binary cache keys on this port's files, not on the sources: after changing rev's
# headers, reinstall with `vcpkg remove rev` first or pass --no-binarycaching.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT EXISTS "${SOURCE_PATH}/include/rev/rev.hpp")
  message(FATAL_ERROR "ports/rev is an overlay port of the rev repository; ${SOURCE_PATH} is not one")
endif()

# The port's version must be the project's (project(rev VERSION ...) in CMakeLists.txt).
file(STRINGS "${SOURCE_PATH}/CMakeLists.txt" rev_project_line REGEX "^project\\(rev VERSION ")
string(REGEX MATCH "VERSION ([0-9.]+)" rev_project_line "${rev_project_line}")
if(NOT CMAKE_MATCH_1 STREQUAL VERSION)
  message(FATAL_ERROR "ports/rev/vcpkg.json says version ${VERSION}, CMakeLists.txt says ${CMAKE_MATCH_1}")
endif()

# Header-only: one configuration is enough, and nothing lands in lib/ or debug/ but rev.pc.
set(VCPKG_BUILD_TYPE release)

# rev's CMakeLists.txt links xtensor and zlib whenever it finds them. Make the features decide
# instead of whatever happens to be on the machine: a feature requires the package, its absence
# hides it from find_package().
vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
  FEATURES
    cuda    REV_WITH_CUDA
    xtensor CMAKE_REQUIRE_FIND_PACKAGE_xtensor
    zlib    CMAKE_REQUIRE_FIND_PACKAGE_ZLIB
  INVERTED_FEATURES
    xtensor CMAKE_DISABLE_FIND_PACKAGE_xtensor
    zlib    CMAKE_DISABLE_FIND_PACKAGE_ZLIB
)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${FEATURE_OPTIONS}
    -DREV_BUILD_TESTS=OFF
    -DREV_BUILD_EXAMPLES=OFF
    -DREV_BUILD_BENCH=OFF
    -DREV_INSTALL=ON
    # vcpkg wants .pc files with a Libs: line (rev.pc has -pthread) in lib/pkgconfig.
    -DREV_INSTALL_PKGCONFIGDIR=lib/pkgconfig
)
vcpkg_cmake_install()

# rev installs its CMake package to share/cmake/rev; vcpkg expects share/rev.
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/rev)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug")
file(GLOB rev_lib_entries "${CURRENT_PACKAGES_DIR}/lib/*")
if(NOT rev_lib_entries)
  file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/lib")
endif()

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
