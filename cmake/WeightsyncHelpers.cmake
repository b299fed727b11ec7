# Shared compile settings and helpers for every weightsync target.

set(WEIGHTSYNC_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wconversion
    -Wno-sign-conversion)

# ws_library(NAME SOURCES ... DEPS ...): a static library of one layer, with src/ and include/ on its
# include path so code says #include "core/log.h" and #include "weightsync/status.h".
function(ws_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  # C++ only: nvcc (CUDA sources of src/convert/cuda) takes other warning flags.
  target_compile_options(${name} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:${WEIGHTSYNC_WARNINGS}>")
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# ws_test(NAME SOURCES ... DEPS ...): one GoogleTest program per layer, tests beside the code.
function(ws_test name)
  if(NOT WEIGHTSYNC_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${WEIGHTSYNC_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
      WEIGHTSYNC_SOURCE_DIR="${PROJECT_SOURCE_DIR}" WEIGHTSYNC_BINARY_DIR="${PROJECT_BINARY_DIR}"
      WEIGHTSYNC_PYTHON="${WEIGHTSYNC_PYTHON}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
endfunction()
