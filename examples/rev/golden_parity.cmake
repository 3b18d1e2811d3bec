# `rev run` + `rev compare` on a golden case, in eval mode and in both training modes.
#   cmake -DREV=path/to/rev -DGOLDEN=.../revbifpn_s0_b2_r64 -DOUT=dir -P golden_parity.cmake
# Prints "skipped: golden files ... absent" (CTest's SKIP_REGULAR_EXPRESSION) when they are absent.
if(NOT EXISTS ${GOLDEN}.weights.safetensors OR NOT EXISTS ${GOLDEN}.io.safetensors)
  message("skipped: golden files ${GOLDEN}.{weights,io}.safetensors absent (../shared/golden is not checked out)")
  return()
endif()
foreach(run "eval;--stored" "train;--stored" "train;--reversible")
  list(GET run 0 mode)
  list(GET run 1 flag)
  set(out ${OUT}/golden_${mode}${flag}.safetensors)
  execute_process(COMMAND ${REV} run revbifpn-s0 --weights ${GOLDEN}.weights.safetensors --io ${GOLDEN}.io.safetensors
                          --out ${out} --mode ${mode} ${flag} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "rev run (${mode} ${flag}) failed")
  endif()
  execute_process(COMMAND ${REV} compare ${out} ${GOLDEN}.io.safetensors RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "rev compare (${mode} ${flag}): outputs differ from the golden file")
  endif()
endforeach()
