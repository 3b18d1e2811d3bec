# consumer.<way>: the downstream project tests/consumer/ configured, built and run against rev
# the three ways users get it (tests/consumer/run.cmake). Scratch directories under consumer/.
set(rev_consumer_ways add_subdirectory fetchcontent)
if(REV_INSTALL)
  list(PREPEND rev_consumer_ways find_package)  # installs this build tree into a scratch prefix
else()
  message(STATUS "rev: REV_INSTALL is OFF, so the test consumer.find_package is not registered")
endif()
foreach(way IN LISTS rev_consumer_ways)
  add_test(NAME consumer.${way}
           COMMAND ${CMAKE_COMMAND} -DMODE=${way} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                   -DWORK_DIR=${PROJECT_BINARY_DIR}/consumer/${way}
                   -DREV_BUILD_DIR=${PROJECT_BINARY_DIR} -DCONFIG=$<CONFIG>
                   -DGENERATOR=${CMAKE_GENERATOR} -DCXX=${CMAKE_CXX_COMPILER} -DWERROR=${REV_WERROR}
                   -P ${PROJECT_SOURCE_DIR}/tests/consumer/run.cmake)
  set_tests_properties(consumer.${way} PROPERTIES LABELS consumer TIMEOUT 300)
endforeach()
