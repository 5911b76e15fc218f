/* The checks of the plain C++ test programs (test_cpp.cpp, test_cpp_eh.cpp): no test
 * framework, so that each builds with g++ and clang++ alike and runs under every sanitizer.
 * A failed check names itself and exits non-zero. */
#ifndef WEFT_TEST_CPP_CHECK_H
#define WEFT_TEST_CPP_CHECK_H

#include <cstdio>
#include <cstdlib>

namespace {
int nchecks = 0;
} // namespace

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        nchecks++;                                                                                 \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            std::exit(1);                                                                          \
        }                                                                                          \
    } while (0)
#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        nchecks++;                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            std::fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", __FILE__,       \
                         __LINE__, #a, #b, a_, b_);                                                \
            std::exit(1);                                                                          \
        }                                                                                          \
    } while (0)

#endif
