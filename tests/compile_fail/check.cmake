# Compiles SRC once; with KO set, compilation must fail and its output match REGEX, otherwise
# it must succeed (the "ok" twin proves a failure is the intended one, not a broken setup).
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
set(defines)
if(KO)
  set(defines -DREV_KO)
endif()
execute_process(COMMAND ${CXX} ${flags} ${defines} -fsyntax-only ${SRC}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(KO)
  if(rc EQUAL 0)
    message(FATAL_ERROR "expected a compile error, but ${SRC} compiled")
  endif()
  # REGEX may hold several expressions separated by "@@": every one must match.
  string(REPLACE "@@" ";" regexes "${REGEX}")
  foreach(regex ${regexes})
    if(NOT "${out}${err}" MATCHES "${regex}")
      message(FATAL_ERROR "the compile error does not say '${regex}':\n${err}")
    endif()
  endforeach()
  message(STATUS "fails as intended: ${REGEX}")
elseif(NOT rc EQUAL 0)
  message(FATAL_ERROR "the ok twin of ${SRC} does not compile:\n${err}")
endif()
