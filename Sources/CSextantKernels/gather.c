// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// Distances from one query to rows picked by index (graph neighbours), for HNSW traversal. The rows are
// scattered in memory, so unlike the contiguous batch kernels this loop is latency-bound: prefetching the
// next rows' first cache lines while the current one is computed hides part of each miss (hnswlib does the
// same with _mm_prefetch). The arithmetic goes through the best kernels for this CPU.
#include "sextant_kernels.h"

static inline void prefetch_row(const float *row, size_t d) {
    const char *p = (const char *)row;
    size_t bytes = d * sizeof(float);
    // The first four lines; the hardware prefetcher follows the rest of a sequential row.
    for (size_t off = 0; off < bytes && off < 256; off += 64) __builtin_prefetch(p + off, 0, 3);
}

#define GATHER(NAME, FIELD)                                                                                     \
    void NAME(const float *q, const float *base, const uint32_t *ids, size_t n, size_t d, float *out) {      \
        const sx_kernels *k = sx_kernels_best();                                                              \
        if (n > 0) prefetch_row(base + (size_t)ids[0] * d, d);                                                \
        if (n > 1) prefetch_row(base + (size_t)ids[1] * d, d);                                                \
        for (size_t i = 0; i < n; i++) {                                                                      \
            if (i + 2 < n) prefetch_row(base + (size_t)ids[i + 2] * d, d);                                    \
            out[i] = k->FIELD(q, base + (size_t)ids[i] * d, d);                                               \
        }                                                                                                     \
    }

GATHER(sx_dot_gather, dot)
GATHER(sx_l2sq_gather, l2sq)
GATHER(sx_l1_gather, l1)

void sx_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
