/*
 * version.h - the one version string of vmemfs, set by CMake from
 * project(VERSION) (VMEMFS_VERSION_STRING on the compiler's command line).
 */
#ifndef VMEMFS_CORE_UTIL_VERSION_H
#define VMEMFS_CORE_UTIL_VERSION_H

#ifndef VMEMFS_VERSION_STRING
#error "VMEMFS_VERSION_STRING comes from CMakeLists.txt (project VERSION)"
#endif
#define VMEMFS_VERSION VMEMFS_VERSION_STRING

#endif
