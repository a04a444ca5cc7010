# What `cmake --install` and `cpack -G DEB` ship (issue 11, items 5 and 6). Included once, at the
# end of the root CMakeLists.txt, after every target exists.
#
# Two components, which cpack turns into two Debian packages:
#   runtime -> `flame`:     flame-broker, flame, flame-worker (and flame-bench if built), the
#                           systemd units and example configs. What a broker VM or a runner
#                           image needs, with only shared-library dependencies.
#   dev     -> `flame-dev`: the client and runner libraries (static), their headers under
#                           include/flame/, the Cap'n Proto schema and its generated header, the
#                           CMake package (find_package(flame) -> flame::client, flame::runner)
#                           and pkg-config files (flame-client.pc, flame-runner.pc). It depends
#                           on the -dev packages the headers and the static libraries need.
#
# Headers: the tree includes its own headers as "client/client.h", "common/codec.h", ... (from
# the source root). They are installed with that layout under include/flame/, and the installed
# targets put both include/ (for <flame/client.h>) and include/flame/ (so the internal
# "common/x.h" includes resolve) on the consumer's include path. include/flame/client.h and
# include/flame/runner.h are the umbrella headers an application includes.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FLAME_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/flame)
set(FLAME_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/flame)

# --- executables ----------------------------------------------------------------------------
set(_flame_programs flame-broker flame flame-worker)
if(TARGET flame-bench)
  list(APPEND _flame_programs flame-bench)
endif()
install(TARGETS ${_flame_programs} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

# --- libraries and the CMake package ---------------------------------------------------------
# flame_client and flame_runner are static libraries on top of flame_common and flame_schema, so
# those two ship as well (a consumer links them through the imported targets' interface).
set_target_properties(flame_client PROPERTIES EXPORT_NAME client)
set_target_properties(flame_runner PROPERTIES EXPORT_NAME runner)
set_target_properties(flame_common PROPERTIES EXPORT_NAME common)
set_target_properties(flame_schema PROPERTIES EXPORT_NAME schema)
# The libraries put the source root (and the generated/ folder) on their users' include path with
# plain paths. For the exported targets those are build-tree paths only: wrapped here in
# $<BUILD_INTERFACE:...> (the installed include dirs come from INCLUDES DESTINATION below), so
# the directories' own CMakeLists.txt stay as they are.
foreach(_target flame_client flame_runner flame_common flame_schema)
  get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT _dirs)
    continue()
  endif()
  set(_wrapped "")
  foreach(_dir IN LISTS _dirs)
    if(_dir MATCHES "^\\$<" OR NOT IS_ABSOLUTE "${_dir}")
      list(APPEND _wrapped "${_dir}")  # already a generator expression
    else()
      list(APPEND _wrapped "$<BUILD_INTERFACE:${_dir}>")
    endif()
  endforeach()
  set_property(TARGET ${_target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${_wrapped}")
endforeach()
# In the tree, <flame/client.h> and <flame/runner.h> resolve too (include/ of the source tree).
target_include_directories(flame_client PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
target_include_directories(flame_runner PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
install(TARGETS flame_client flame_runner flame_common flame_schema
        EXPORT flameTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} ${FLAME_INSTALL_INCLUDEDIR})
install(EXPORT flameTargets NAMESPACE flame:: DESTINATION ${FLAME_INSTALL_CMAKEDIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/flameConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/cmake/flameConfig.cmake
                              INSTALL_DESTINATION ${FLAME_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API, so only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/flameConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/flameConfig.cmake ${PROJECT_BINARY_DIR}/cmake/flameConfigVersion.cmake
        DESTINATION ${FLAME_INSTALL_CMAKEDIR} COMPONENT dev)

# --- headers and schema ----------------------------------------------------------------------
# Every header of the three directories the public headers come from (read at install time, so
# a header added later ships without a change here). broker/ and backends/ are not a public API.
foreach(_dir client worker common)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_dir}/ DESTINATION ${FLAME_INSTALL_INCLUDEDIR}/${_dir}
          COMPONENT dev FILES_MATCHING PATTERN "*.h")
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/include/flame/client.h ${PROJECT_SOURCE_DIR}/include/flame/runner.h
        DESTINATION ${FLAME_INSTALL_INCLUDEDIR} COMPONENT dev)
# The wire schema (for clients in other languages and for `capnp compile`), next to the header
# generated from it: "schema/flame.capnp.h", as the tree includes it.
install(FILES ${PROJECT_SOURCE_DIR}/schema/flame.capnp ${PROJECT_BINARY_DIR}/generated/schema/flame.capnp.h
        DESTINATION ${FLAME_INSTALL_INCLUDEDIR}/schema COMPONENT dev)

# --- pkg-config ------------------------------------------------------------------------------
# Relocatable: the prefix is found from where the .pc file is (${pcfiledir}).
set(FLAME_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH FLAME_PC_TO_PREFIX /root/${FLAME_INSTALL_PKGCONFIGDIR} /root)
foreach(_pc flame-client flame-runner)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${_pc}.pc.in ${PROJECT_BINARY_DIR}/cmake/${_pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/cmake/${_pc}.pc DESTINATION ${FLAME_INSTALL_PKGCONFIGDIR} COMPONENT dev)
endforeach()

# --- services and example configs (examples/systemd/, docs/DEPLOY.md) -----------------------
install(FILES ${PROJECT_SOURCE_DIR}/examples/systemd/flame-broker.service
              ${PROJECT_SOURCE_DIR}/examples/systemd/flame-runner@.service
        DESTINATION lib/systemd/system COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/examples/systemd/broker.toml
              ${PROJECT_SOURCE_DIR}/examples/systemd/runner-default.env
              ${PROJECT_SOURCE_DIR}/examples/flame.toml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/flame/examples COMPONENT runtime)
# The units' Documentation= points here.
install(FILES ${PROJECT_SOURCE_DIR}/docs/DEPLOY.md ${PROJECT_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)

# --- cpack -G DEB ----------------------------------------------------------------------------
set(CPACK_PACKAGE_NAME flame)
set(CPACK_PACKAGE_VENDOR "flame")
set(CPACK_PACKAGE_CONTACT "flame maintainers <flame@example.org>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Executables without their debug sections (a RelWithDebInfo flame-broker is ~10 times larger).
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "flame maintainers <flame@example.org>")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME flame)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
# One string each (not a list: CMake would join the lines with ";"); the first line is the
# package's synopsis (so no CPACK_PACKAGE_DESCRIPTION_SUMMARY, which CPackDeb would put first).
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "elastic job pools over ZeroMQ: broker, CLI and generic runner
flame-broker queues call/cast/place jobs and routes them to runner processes with free
slots, and boots or stops machines (local processes, commands, Fly.io, Kubernetes) from
queue depth and idle timers. Also the flame CLI, flame-worker and systemd units.")
# The executables' library dependencies (libzmq5, libcapnp-0.9.2, libcurl4, libssl3, ...) are
# read from the binaries by dpkg-shlibdeps, so they follow whatever the build linked.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME flame-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DESCRIPTION "elastic job pools over ZeroMQ: client and runner libraries (development files)
flame::Client and flame::Runner as static libraries, headers (<flame/client.h>,
<flame/runner.h>), the Cap'n Proto wire schema, a CMake package (find_package(flame))
and pkg-config files (flame-client, flame-runner).")
# What the installed headers include and the static libraries link (find_dependency in
# flameConfig.cmake): ZeroMQ + cppzmq, Cap'n Proto (whose CMake package needs OpenSSL), spdlog,
# and the header-only CLI11 and nlohmann-json that libflame_client.a was built against.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "flame (= ${PROJECT_VERSION}), libzmq3-dev, cppzmq-dev, libcapnp-dev, capnproto, libspdlog-dev, libssl-dev, libcli11-dev, nlohmann-json3-dev")
set(CPACK_COMPONENT_DEV_DEPENDS runtime)
include(CPack)
