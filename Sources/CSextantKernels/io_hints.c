// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// Advisory I/O hints that Swift's Glibc module does not expose (sync_file_range needs _GNU_SOURCE).

#define _GNU_SOURCE
#include <fcntl.h>

#include "sextant_kernels.h"

int sx_start_writeback(int fd, int64_t offset, int64_t length) {
#if defined(__linux__)
    return sync_file_range(fd, (off_t)offset, (off_t)length, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)length;
    return 0;
#endif
}

#if defined(__linux__)
#include <sched.h>
#endif

int sx_affinity_cpu_count(void) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
    return CPU_COUNT(&set);
#else
    return 0;
#endif
}
