# Installation layout and the Debian package.
#
#   cmake --install BUILD [--prefix P]        binary, unit, example config, man page, completion
#   cpack --config BUILD/CPackConfig.cmake    lfharvest_<version>_<arch>.deb, always for /usr
#
# What goes where (prefix /usr in the package):
#   bin/lfharvest                                the program
#   /etc/lfharvest/lfharvest.toml                the example configuration (a conffile)
#   <systemd unit folder>/lfharvest.service      the unit (/lib/systemd/system on Debian 12)
#   <systemd unit folder>/lfharvest@.service     the template unit, one instance per project
#   share/man/man1/lfharvest.1.gz                lfharvest(1)
#   share/bash-completion/completions/lfharvest  bash completion
#   share/doc/lfharvest/                         copyright, changelog, operations guide
#
# The program itself reads /etc/lfharvest/lfharvest.toml by default, so that path is fixed
# whatever the prefix. The unit names the binary by its installed path: it is written at install
# time for the prefix actually used (cmake/ConfigureUnit.cmake). BUILD/systemd/ holds the same
# units for the configured prefix, to look at.

set(LFHARVEST_SYSTEMD_UNIT_DIR "" CACHE PATH
    "Folder for the systemd unit (empty: systemd's pkg-config value, else /lib/systemd/system)")
set(LFHARVEST_PACKAGE_MAINTAINER "lfharvest maintainers <lfharvest@example.invalid>" CACHE STRING
    "Maintainer field of the Debian package")

set(lfharvest_unit_dir "${LFHARVEST_SYSTEMD_UNIT_DIR}")
if(NOT lfharvest_unit_dir)
  pkg_get_variable(lfharvest_unit_dir systemd systemdsystemunitdir)
endif()
if(NOT lfharvest_unit_dir)
  set(lfharvest_unit_dir /lib/systemd/system)
endif()

set(lfharvest_unit_template ${CMAKE_SOURCE_DIR}/systemd/lfharvest.service.in)
set(lfharvest_staging ${CMAKE_BINARY_DIR}/packaging)

# --- The program ---------------------------------------------------------------------------------
install(TARGETS lfharvest RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# --- The systemd units ---------------------------------------------------------------------------
# lfharvest.service (one project) and the template lfharvest@.service (one instance per project),
# both from the same source.
set(lfharvest_units "lfharvest.service|OFF" "lfharvest@.service|ON")
foreach(pair IN LISTS lfharvest_units)
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 unit_name)
  list(GET pair 1 instances)
  set(LFHARVEST_UNIT_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
  set(LFHARVEST_UNIT_TEMPLATE ${lfharvest_unit_template})
  set(LFHARVEST_UNIT_OUTPUT ${CMAKE_BINARY_DIR}/systemd/${unit_name})
  set(LFHARVEST_UNIT_INSTANCES ${instances})
  include(${CMAKE_SOURCE_DIR}/cmake/ConfigureUnit.cmake)

  install(CODE "
    if(IS_ABSOLUTE \"${CMAKE_INSTALL_BINDIR}\")
      set(LFHARVEST_UNIT_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
    else()
      set(LFHARVEST_UNIT_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
    endif()
    set(LFHARVEST_UNIT_TEMPLATE \"${lfharvest_unit_template}\")
    set(LFHARVEST_UNIT_OUTPUT \"${lfharvest_staging}/install/${unit_name}\")
    set(LFHARVEST_UNIT_INSTANCES ${instances})
    include(\"${CMAKE_SOURCE_DIR}/cmake/ConfigureUnit.cmake\")
  ")
  install(FILES ${lfharvest_staging}/install/${unit_name} DESTINATION ${lfharvest_unit_dir})
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${lfharvest_unit_template}
             ${CMAKE_SOURCE_DIR}/cmake/ConfigureUnit.cmake)

# --- Configuration, manual, completion, documentation --------------------------------------------
install(FILES ${CMAKE_SOURCE_DIR}/config/lfharvest.toml DESTINATION /etc/lfharvest
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# Debian wants manual pages and changelogs compressed with gzip -9n (no name, no time stamp), so
# the package is reproducible.
find_program(LFHARVEST_GZIP gzip REQUIRED)
set(lfharvest_gzipped)
foreach(pair IN ITEMS "lfharvest.1|lfharvest.1.gz" "changelog|changelog.gz")
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 source)
  list(GET pair 1 target)
  add_custom_command(
    OUTPUT ${lfharvest_staging}/${target}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${lfharvest_staging}
    COMMAND ${LFHARVEST_GZIP} -9 -n -c ${CMAKE_SOURCE_DIR}/packaging/${source}
            > ${lfharvest_staging}/${target}
    DEPENDS ${CMAKE_SOURCE_DIR}/packaging/${source}
    COMMENT "Compressing packaging/${source}")
  list(APPEND lfharvest_gzipped ${lfharvest_staging}/${target})
endforeach()
add_custom_target(lfharvest_packaging_files ALL DEPENDS ${lfharvest_gzipped})

install(FILES ${lfharvest_staging}/lfharvest.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/lfharvest.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions RENAME lfharvest)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/copyright ${lfharvest_staging}/changelog.gz
              ${CMAKE_SOURCE_DIR}/docs/operations.md
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/lfharvest)

# --- The Debian package --------------------------------------------------------------------------
# Maintainer scripts must be executable and the control files owned by root with fixed modes.
foreach(script IN ITEMS postinst prerm postrm)
  configure_file(${CMAKE_SOURCE_DIR}/packaging/${script} ${lfharvest_staging}/debian/${script}
                 COPYONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                 GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()
configure_file(${CMAKE_SOURCE_DIR}/packaging/conffiles ${lfharvest_staging}/debian/conffiles
               COPYONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME lfharvest)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR lfharvest)
set(CPACK_PACKAGE_CONTACT "${LFHARVEST_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
# The package always installs under /usr, whatever CMAKE_INSTALL_PREFIX this build was configured
# with; DESTDIR staging lets the absolute paths (/etc, the unit folder) land inside the package.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # lfharvest_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${PROJECT_HOMEPAGE_URL}")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus-node-exporter, sqlite3")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "lfharvest polls the annotation scores of a Langfuse project, fetches the
observations of every annotated trace in small pages within a strict request
budget, keeps them in a local SQLite checkpoint that survives crashes, and
writes datasets on demand (JSON, JSONL, OpenAI chat and DPO, KTO, ShareGPT).
.
The package ships a hardened systemd unit (lfharvest.service) that runs the
harvester as a dynamic user with its state in /var/lib/lfharvest and the
secret key handed over as a systemd credential, and a template unit
(lfharvest@.service) for several Langfuse projects on one machine.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${lfharvest_staging}/debian/postinst ${lfharvest_staging}/debian/prerm
    ${lfharvest_staging}/debian/postrm ${lfharvest_staging}/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
