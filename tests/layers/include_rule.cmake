# The include rule of docs/architecture.md, checked over every header under ROOT (include/rev):
#   core/        includes core/ only;
#   ops/         includes core/ and ops/ only (the op declarations sit on the core);
#   cpu/         may include cpu/ (its kernels), ops/ and core/, never cuda/;
#   cuda/        never cpu/;
#   elsewhere    never cpu/ or cuda/: the backends are reached through their entry headers
#                rev/cpu.hpp (which gathers cpu/) and rev/cuda.hpp (which gathers cuda/).
file(GLOB_RECURSE headers RELATIVE "${ROOT}" "${ROOT}/*.hpp" "${ROOT}/*.cuh")
set(violations "")
foreach(header ${headers})
  file(STRINGS "${ROOT}/${header}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]rev/")
  string(REGEX MATCH "^[^/]+/" dir "${header}")
  foreach(line ${includes})
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[<\"]rev/([^>\"]*)[>\"].*$" "\\1" target "${line}")
    set(bad "")
    if(dir STREQUAL "core/" AND NOT target MATCHES "^core/")
      set(bad "core/ includes only core/")
    elseif(dir STREQUAL "ops/" AND NOT target MATCHES "^(core|ops)/")
      set(bad "ops/ includes only core/ and ops/")
    elseif(NOT dir STREQUAL "cpu/" AND target MATCHES "^cpu/" AND NOT header STREQUAL "cpu.hpp")
      set(bad "only cpu/ and rev/cpu.hpp include cpu/")
    elseif(NOT dir STREQUAL "cuda/" AND target MATCHES "^cuda/" AND NOT header STREQUAL "cuda.hpp")
      set(bad "only cuda/ and rev/cuda.hpp include cuda/")
    endif()
    if(bad)
      string(APPEND violations "  rev/${header} includes rev/${target}: ${bad}\n")
    endif()
  endforeach()
endforeach()
list(LENGTH headers count)
if(violations)
  message(FATAL_ERROR "include rule broken:\n${violations}")
endif()
message(STATUS "include rule holds for ${count} headers")
