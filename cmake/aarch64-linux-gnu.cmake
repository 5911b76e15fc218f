# Cross-compiling for aarch64 with Debian's gcc-aarch64-linux-gnu. Criterion and its runtime
# libraries come from a private sysroot unpacked by scripts/arm64-sysroot.sh (WEFT_ARM64_SYSROOT);
# tests run under qemu-aarch64 with that sysroot as its library root.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
if(NOT WEFT_ARM64_SYSROOT)
  set(WEFT_ARM64_SYSROOT ${CMAKE_CURRENT_LIST_DIR}/../build/arm64-sysroot)
endif()
get_filename_component(WEFT_ARM64_SYSROOT ${WEFT_ARM64_SYSROOT} ABSOLUTE)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} ${WEFT_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig)
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${WEFT_ARM64_SYSROOT})
set(CMAKE_EXE_LINKER_FLAGS_INIT
    "-Wl,-rpath-link,${WEFT_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,${WEFT_ARM64_SYSROOT}/lib/aarch64-linux-gnu")
# QEMU_LD_PREFIX reaches the test instances Criterion re-executes (through binfmt_misc).
set(CMAKE_CROSSCOMPILING_EMULATOR env QEMU_LD_PREFIX=${WEFT_ARM64_SYSROOT} qemu-aarch64)
