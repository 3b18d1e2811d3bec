# Builds and runs the consumer project of this directory one way (cmake -P, called by the CTest
# tests consumer.<MODE> that cmake/revConsumerTests.cmake registers):
#   cmake -DMODE=find_package|add_subdirectory|fetchcontent -DSOURCE_DIR=<rev source>
#         -DWORK_DIR=<scratch dir> [-DREV_BUILD_DIR=<rev build to install from> -DCONFIG=<config>]
#         [-DGENERATOR=Ninja] [-DCXX=<compiler>] [-DWERROR=ON] -P run.cmake
# Checks that rev puts no -Werror and no instruction-set flag (-march, -mavx2, ...) on the
# consumer's compile line; with WERROR, the consumer's build must also print no warning.
cmake_minimum_required(VERSION 3.23)
foreach(var MODE SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT GENERATOR)
  set(GENERATOR Ninja)
endif()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer.${MODE}: ${what} failed (${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(consumer_dir ${CMAKE_CURRENT_LIST_DIR})
set(args -S ${consumer_dir} -B ${WORK_DIR}/build -G ${GENERATOR} -DREV_CONSUMER_MODE=${MODE}
         -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
# The flags rev must never hand a consumer: warnings as errors and instruction sets are the
# consumer's choice.
set(forbidden_flags "(^| )(-Werror[^ ]*|-march=[^ ]*|-mtune=[^ ]*|-mcpu=[^ ]*|-m(sse|avx|fma|f16c|bmi)[^ ]*)")
if(CXX)
  list(APPEND args -DCMAKE_CXX_COMPILER=${CXX})
endif()

if(MODE STREQUAL "find_package")
  # Install rev's build tree into a scratch prefix, as `cmake --install` does for a user.
  set(prefix ${WORK_DIR}/prefix)
  set(install_args --install ${REV_BUILD_DIR} --prefix ${prefix})
  if(CONFIG)
    list(APPEND install_args --config ${CONFIG})
  endif()
  run_step("cmake --install" ${CMAKE_COMMAND} ${install_args})
  list(APPEND args -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND args -DREV_SOURCE_DIR=${SOURCE_DIR})
elseif(MODE STREQUAL "fetchcontent")
  # FetchContent users name a git repository and a tag or commit, so that is what this tests when
  # the source is a git checkout: a clone of the local repository at its HEAD commit (no network).
  # It builds what is committed, not uncommitted edits of the working tree; CI runs on a clean
  # clone, where the two are the same. Without git, FetchContent gets the directory itself
  # (SOURCE_DIR, the FETCHCONTENT_SOURCE_DIR_REV path), which skips the download step.
  find_package(Git QUIET)
  set(head "")
  if(GIT_FOUND AND EXISTS ${SOURCE_DIR}/.git)
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} rev-parse HEAD
                    OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc ERROR_QUIET)
    if(NOT rc EQUAL 0)
      set(head "")
    endif()
  endif()
  if(head)
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} status --porcelain -- CMakeLists.txt cmake include
                    OUTPUT_VARIABLE dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(dirty)
      message(STATUS "consumer.fetchcontent: note: tests commit ${head}; uncommitted changes to CMakeLists.txt, cmake/ or include/ are not part of it")
    endif()
    list(APPEND args -DREV_FETCH_GIT_REPOSITORY=${SOURCE_DIR} -DREV_FETCH_GIT_TAG=${head})
  else()
    list(APPEND args -DREV_SOURCE_DIR=${SOURCE_DIR})
  endif()
else()
  message(FATAL_ERROR "run.cmake: unknown MODE '${MODE}'")
endif()

run_step("configure" ${CMAKE_COMMAND} ${args})
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc OUTPUT_VARIABLE build_log
                ERROR_VARIABLE build_log)
message("${build_log}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer.${MODE}: build failed (${rc})")
endif()
if(WERROR AND build_log MATCHES "warning:")
  message(FATAL_ERROR "consumer.${MODE}: rev's headers raise warnings in a consumer built with -Wall -Wextra -Wpedantic -Wshadow")
endif()

# What reached the consumer's compile line of main.cpp.
file(READ ${WORK_DIR}/build/compile_commands.json commands)
string(REGEX MATCH "\"command\": \"[^\"]*main\\.cpp[^\"]*\"" main_command "${commands}")
if(NOT main_command)
  message(FATAL_ERROR "consumer.${MODE}: no compile command for main.cpp in compile_commands.json")
endif()
message(STATUS "consumer.${MODE}: ${main_command}")
if(main_command MATCHES "${forbidden_flags}")
  message(FATAL_ERROR "consumer.${MODE}: rev put '${CMAKE_MATCH_2}' on the consumer's compile line")
endif()
run_step("run" ${WORK_DIR}/build/rev_consumer)

# The pkg-config file of the installed prefix: compile and run main.cpp with its flags alone.
if(MODE STREQUAL "find_package")
  find_program(PKG_CONFIG_EXECUTABLE pkg-config)
  if(NOT PKG_CONFIG_EXECUTABLE)
    message(STATUS "consumer.find_package: pkg-config not found; rev.pc not checked")
    return()
  endif()
  set(ENV{PKG_CONFIG_PATH} ${prefix}/share/pkgconfig)
  execute_process(COMMAND ${PKG_CONFIG_EXECUTABLE} --cflags --libs rev
                  OUTPUT_VARIABLE pc_flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer.find_package: pkg-config --cflags --libs rev failed (${rc})")
  endif()
  message(STATUS "consumer.find_package: pkg-config --cflags --libs rev: ${pc_flags}")
  if(NOT pc_flags MATCHES "-I${prefix}")
    message(FATAL_ERROR "consumer.find_package: rev.pc does not point into the install prefix")
  endif()
  if(pc_flags MATCHES "${forbidden_flags}")
    message(FATAL_ERROR "consumer.find_package: rev.pc hands the consumer '${CMAKE_MATCH_2}'")
  endif()
  separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
  if(NOT CXX)
    set(CXX c++)
  endif()
  run_step("compiling with pkg-config's flags" ${CXX} -std=c++20 ${consumer_dir}/main.cpp ${pc_flags}
           -o ${WORK_DIR}/rev_consumer_pc)
  run_step("run (pkg-config build)" ${WORK_DIR}/rev_consumer_pc)
endif()
