# Writes the systemd unit from its template for a given install location of the binary.
#
# As a script:  cmake -DLFHARVEST_UNIT_BINDIR=/usr/bin -DLFHARVEST_UNIT_TEMPLATE=... \
#                     -DLFHARVEST_UNIT_OUTPUT=... -P cmake/ConfigureUnit.cmake
# Included by the install step, which sets the same three variables for the prefix in use, so
# the installed unit always names the installed binary. The tests use the script form.
foreach(required IN ITEMS LFHARVEST_UNIT_BINDIR LFHARVEST_UNIT_TEMPLATE LFHARVEST_UNIT_OUTPUT)
  if(NOT DEFINED ${required} OR "${${required}}" STREQUAL "")
    message(FATAL_ERROR "ConfigureUnit.cmake: ${required} is not set")
  endif()
endforeach()
if(NOT IS_ABSOLUTE "${LFHARVEST_UNIT_BINDIR}")
  message(FATAL_ERROR "ConfigureUnit.cmake: the binary folder must be absolute "
                      "(got ${LFHARVEST_UNIT_BINDIR}): systemd needs a full path")
endif()
set(bindir "${LFHARVEST_UNIT_BINDIR}")
configure_file("${LFHARVEST_UNIT_TEMPLATE}" "${LFHARVEST_UNIT_OUTPUT}" @ONLY)
