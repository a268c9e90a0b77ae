# Writes a systemd unit from its template for a given install location of the binary.
#
# As a script:  cmake -DLFHARVEST_UNIT_BINDIR=/usr/bin -DLFHARVEST_UNIT_TEMPLATE=... \
#                     -DLFHARVEST_UNIT_OUTPUT=... [-DLFHARVEST_UNIT_INSTANCES=ON] \
#                     -P cmake/ConfigureUnit.cmake
# Included by the install step, which sets the same variables for the prefix in use, so the
# installed unit always names the installed binary. The tests use the script form.
#
# LFHARVEST_UNIT_INSTANCES OFF (the default) writes lfharvest.service: one project, configured in
# /etc/lfharvest/lfharvest.toml. ON writes the template lfharvest@.service: the instance
# lfharvest@NAME reads /etc/lfharvest/NAME.toml, gets /etc/lfharvest/NAME.secret-key as its
# credential, keeps its database in /var/lib/lfharvest/NAME/ and runs as the dynamic user
# lfharvest-NAME.
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
if(LFHARVEST_UNIT_INSTANCES)
  set(unit_summary "lfharvest for one of several Langfuse projects, lfharvest@PROJECT.service")
  set(unit_edit_name "lfharvest@PROJECT")
  set(unit_description "Harvest annotated Langfuse traces of %i into a local dataset cache")
  set(config_file "/etc/lfharvest/%i.toml")
  set(secret_key_file "/etc/lfharvest/%i.secret-key")
  set(state_directory "lfharvest/%i")
  set(unit_user "lfharvest-%i")
else()
  set(unit_summary "lfharvest as a systemd service")
  set(unit_edit_name "lfharvest")
  set(unit_description "Harvest annotated Langfuse traces into a local dataset cache")
  set(config_file "/etc/lfharvest/lfharvest.toml")
  set(secret_key_file "/etc/lfharvest/secret-key")
  set(state_directory "lfharvest")
  set(unit_user "lfharvest")
endif()
configure_file("${LFHARVEST_UNIT_TEMPLATE}" "${LFHARVEST_UNIT_OUTPUT}" @ONLY)
