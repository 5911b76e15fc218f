# Turns a file into a C array, so that the library carries it (the debug console's page,
# src/debug_console.html). Run at build time by the host's CMake, so it works the same for
# cross builds, and the file then travels inside libweft.a and libweft.so (make install):
#   cmake -DIN=<file> -DOUT=<file.c> -DNAME=<symbol> -P cmake/embed.cmake
# gives `const unsigned char NAME[]` (the bytes, then a NUL) and `const size_t NAME_len`
# (without the NUL).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR nbytes "${nhex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
get_filename_component(src "${IN}" NAME)
file(WRITE "${OUT}"
  "/* Generated from ${src} by cmake/embed.cmake: do not edit. */\n"
  "#include <stddef.h>\n\n"
  "extern const unsigned char ${NAME}[];\n"
  "extern const size_t ${NAME}_len;\n"
  "const unsigned char ${NAME}[] = {\n${bytes}0x00};\n"
  "const size_t ${NAME}_len = ${nbytes};\n")
