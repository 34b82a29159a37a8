/*
 * drivers.c - scheme -> driver table (see drivers.h).
 */
#include "drivers/drivers.h"

#include <string.h>

static const struct {
    const char *scheme;
    vmem_driver_open_fn open;
} driver_table[] = {
    {"file", file_driver_open},
};

vmem_driver_open_fn vmem_driver_lookup(const char *scheme)
{
    for (size_t i = 0; i < sizeof driver_table / sizeof driver_table[0]; i++)
        if (strcmp(driver_table[i].scheme, scheme) == 0)
            return driver_table[i].open;
    return NULL;
}

const char *vmem_driver_names(void)
{
    return "file";
}
