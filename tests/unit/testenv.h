/*
 * testenv.h - where the unit tests find what lives beside them: the source
 * tree's test data and the shared Volatility ISF directory.  Header-only
 * (tests/CMakeLists.txt turns every test_*.c into a program, not *.h).
 *
 * The source tree is $VMEMFS_SRC when set, else the directory CMake built
 * the test from (VMEMFS_SOURCE_DIR, a compile definition).
 */
#ifndef VMEMFS_TESTS_UNIT_TESTENV_H
#define VMEMFS_TESTS_UNIT_TESTENV_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline const char *testenv_src(void)
{
    const char *env = getenv("VMEMFS_SRC");
    return env && *env ? env : VMEMFS_SOURCE_DIR;
}

/* tests/unit/data of the source tree. */
static inline const char *testenv_data_dir(void)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/unit/data", testenv_src());
    return buf;
}

/* The shared ISF directory: $VMEMFS_ISF_DIR, else ../shared/isf beside the
 * source tree; NULL when there is none (tests then skip, saying so). */
static inline const char *testenv_isf_dir(void)
{
    static char buf[4096];
    struct stat st;
    const char *env = getenv("VMEMFS_ISF_DIR");
    if (env && *env)
        return stat(env, &st) == 0 ? env : NULL;
    snprintf(buf, sizeof buf, "%s/../shared/isf", testenv_src());
    return stat(buf, &st) == 0 ? buf : NULL;
}

#endif
