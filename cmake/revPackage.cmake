# rev as a package: a build-tree export (for add_subdirectory/FetchContent users and for
# find_package(rev) pointed at a build directory), and, when REV_INSTALL is ON, install rules for
# the headers, the CMake package (revConfig.cmake, version file, targets) and rev.pc.
include(CMakePackageConfigHelpers)

# rev is header-only and architecture independent: its package files go to share/.
set(REV_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/rev" CACHE STRING
  "Where the CMake package files are installed (relative to the prefix)")
set(REV_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig" CACHE STRING
  "Where rev.pc is installed (relative to the prefix)")
mark_as_advanced(REV_INSTALL_CMAKEDIR REV_INSTALL_PKGCONFIGDIR)

# What this configuration was built with, recorded in revConfig.cmake.
set(rev_with_xtensor OFF)
if(xtensor_FOUND)
  set(rev_with_xtensor ON)
endif()
set(rev_with_zlib OFF)
if(ZLIB_FOUND)
  set(rev_with_zlib ON)
endif()
set(rev_with_cuda ${REV_WITH_CUDA})

write_basic_package_version_file(${PROJECT_BINARY_DIR}/revConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)

# Build tree: revConfig.cmake beside revTargets.cmake in the build directory.
export(TARGETS rev NAMESPACE rev:: FILE ${PROJECT_BINARY_DIR}/revTargets.cmake)
if(REV_WITH_CUDA)
  export(TARGETS rev_cuda NAMESPACE rev:: FILE ${PROJECT_BINARY_DIR}/revCudaTargets.cmake)
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/revConfig.cmake.in
  ${PROJECT_BINARY_DIR}/revConfig.cmake
  INSTALL_DESTINATION ${PROJECT_BINARY_DIR}
  INSTALL_PREFIX ${PROJECT_BINARY_DIR})

if(NOT REV_INSTALL)
  return()
endif()

install(TARGETS rev EXPORT revTargets FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT revTargets NAMESPACE rev:: DESTINATION ${REV_INSTALL_CMAKEDIR})
if(REV_WITH_CUDA)
  install(TARGETS rev_cuda EXPORT revCudaTargets)
  install(EXPORT revCudaTargets NAMESPACE rev:: DESTINATION ${REV_INSTALL_CMAKEDIR})
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/revConfig.cmake.in
  ${PROJECT_BINARY_DIR}/install-files/revConfig.cmake
  INSTALL_DESTINATION ${REV_INSTALL_CMAKEDIR})
install(FILES ${PROJECT_BINARY_DIR}/install-files/revConfig.cmake ${PROJECT_BINARY_DIR}/revConfigVersion.cmake
  DESTINATION ${REV_INSTALL_CMAKEDIR})

# rev.pc, relocatable: the prefix is found from the file's own directory when the directories
# are relative (the default), so `cmake --install build --prefix <anywhere>` works.
if(IS_ABSOLUTE "${REV_INSTALL_PKGCONFIGDIR}")
  set(rev_pc_prefix "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH rev_pc_up "/prefix/${REV_INSTALL_PKGCONFIGDIR}" "/prefix")
  string(REGEX REPLACE "/$" "" rev_pc_up "${rev_pc_up}")
  set(rev_pc_prefix "\${pcfiledir}/${rev_pc_up}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(rev_pc_includedir "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(rev_pc_includedir "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/rev.pc.in ${PROJECT_BINARY_DIR}/install-files/rev.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/install-files/rev.pc DESTINATION ${REV_INSTALL_PKGCONFIGDIR})
