# Registers each doctest case of the unit test binary as a CTest test of its own.
#
# Run after each link of the binary (POST_BUILD, tests/CMakeLists.txt):
#   cmake -DUNIT_TESTS=BIN -DOUTPUT=FILE -P unit_discover.cmake
# It writes FILE, which CTest includes: for the K-th case that `BIN --list-test-cases` prints, a
# test "unit.<case name>" that runs `BIN --first=K --last=K` (label `unit`). doctest lists and
# runs the cases in the same loop and order, so the K-th listed case is exactly the one that
# runs. The position is used rather than `--test-case=<name>` (what doctest's own
# doctest_discover_tests does), because doctest matches names without case and with * and ?
# as wildcards, and CMake lists split names that hold a ';' (several cases here do): a name
# filter could run two cases, or none, and pass.
cmake_minimum_required(VERSION 3.25)
foreach(required IN ITEMS UNIT_TESTS OUTPUT)
  if(NOT DEFINED ${required})
    message(FATAL_ERROR "unit_discover.cmake: ${required} is not set")
  endif()
endforeach()
execute_process(COMMAND "${UNIT_TESTS}" --list-test-cases OUTPUT_VARIABLE output
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${UNIT_TESTS} --list-test-cases failed (${result}):\n${output}")
endif()
# Keep ';' out of CMake's list handling until the names are written out.
string(REPLACE ";" "<semicolon>" output "${output}")
string(REPLACE "\n" ";" lines "${output}")
set(script "")
set(names "")
set(position 0)
foreach(line IN LISTS lines)
  if(line STREQUAL "" OR line MATCHES "^=+$" OR line MATCHES "^\\[doctest\\] ")
    continue()
  endif()
  if(line MATCHES "]==]")
    message(FATAL_ERROR "a test case name holds ]==]: '${line}'")
  endif()
  math(EXPR position "${position} + 1")
  # Two cases may share a name; CTest names must be unique.
  set(name "unit.${line}")
  set(copy 1)
  while(name IN_LIST names)
    math(EXPR copy "${copy} + 1")
    set(name "unit.${line} #${copy}")
  endwhile()
  list(APPEND names "${name}")
  string(APPEND script
    "add_test([==[${name}]==] \"${UNIT_TESTS}\" --first=${position} --last=${position})\n"
    "set_tests_properties([==[${name}]==] PROPERTIES LABELS unit)\n")
endforeach()
if(position EQUAL 0)
  message(FATAL_ERROR "${UNIT_TESTS} lists no test case")
endif()
string(REPLACE "<semicolon>" ";" script "${script}")
file(WRITE "${OUTPUT}" "${script}")
