# Installation layout (used by the .deb package; see packaging/).
install(TARGETS lfharvest RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
