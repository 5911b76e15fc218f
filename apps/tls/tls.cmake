# weft_tls: TLS streams over OpenSSL for weft tasks (weft_tls.h), used by weft-httpd and the
# HTTP client. Built only when OpenSSL's development files are there (Debian libssl-dev);
# without them weft-httpd and the client build without TLS. Included (not a subdirectory) by
# each app that uses it, so that it exists before the first of them asks for it.
include_guard(GLOBAL)
find_package(PkgConfig)
if(PkgConfig_FOUND)
  pkg_check_modules(WEFT_OPENSSL IMPORTED_TARGET GLOBAL openssl)
endif()
if(NOT WEFT_OPENSSL_FOUND)
  message(STATUS "weft_tls: OpenSSL not found (libssl-dev): weft-httpd and httpc without TLS")
  return()
endif()
add_library(weft_tls STATIC ${CMAKE_CURRENT_LIST_DIR}/tls.c)
target_compile_options(weft_tls PRIVATE ${WEFT_C_FLAGS})
target_include_directories(weft_tls PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(weft_tls PUBLIC weft_static PkgConfig::WEFT_OPENSSL)
target_compile_definitions(weft_tls INTERFACE WEFT_HAVE_TLS)

# The stream's contract (test_tls.c), on both backends.
if(NOT WEFT_TESTS OR CMAKE_CROSSCOMPILING OR WEFT_SANITIZE MATCHES "thread")
  return()
endif()
pkg_check_modules(WEFT_TLS_CRITERION IMPORTED_TARGET criterion)
if(WEFT_TLS_CRITERION_FOUND)
  add_executable(test_tls ${CMAKE_CURRENT_LIST_DIR}/tests/test_tls.c)
  target_link_libraries(test_tls PRIVATE weft_tls PkgConfig::WEFT_TLS_CRITERION)
  target_compile_options(test_tls PRIVATE ${WEFT_C_FLAGS} -Wno-missing-prototypes)
  add_test(NAME http_tls_stream COMMAND test_tls --jobs=2)
  set_tests_properties(http_tls_stream PROPERTIES LABELS "httpd" TIMEOUT 120
                       ENVIRONMENT WEFT_BACKEND=epoll)
  if(LIBURING_FOUND)
    add_test(NAME http_tls_stream_io_uring COMMAND test_tls --jobs=2)
    set_tests_properties(http_tls_stream_io_uring PROPERTIES LABELS "httpd;io_uring" TIMEOUT 120
                         ENVIRONMENT WEFT_BACKEND=io_uring)
  endif()
endif()
