// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// Distances from one query to rows picked by index (graph neighbours), for HNSW traversal. The rows are
// scattered in memory, so unlike the contiguous batch kernels this loop is latency-bound. With AVX-512 the
// rows go four at a time (four independent miss streams; see sx512_gather); otherwise one at a time with
// the next rows' first cache lines prefetched, as hnswlib does with _mm_prefetch.
#include "kernels_internal.h"

static inline void prefetch_row(const float *row, size_t d) {
    const char *p = (const char *)row;
    size_t bytes = d * sizeof(float);
    for (size_t off = 0; off < bytes && off < 256; off += 64) __builtin_prefetch(p + off, 0, 3);
}

#if SX_HAVE_X86_KERNELS
#define SX_TRY_AVX512(M)                                                                                      \
    if (k == &sx_kernels_avx512_table) {                                                                      \
        sx512_gather(M, q, base, ids, n, d, out);                                                             \
        return;                                                                                               \
    }
#else
#define SX_TRY_AVX512(M)
#endif

#define GATHER(NAME, FIELD, M)                                                                                \
    void NAME(const float *q, const float *base, const uint32_t *ids, size_t n, size_t d, float *out) {      \
        const sx_kernels *k = sx_kernels_best();                                                              \
        SX_TRY_AVX512(M)                                                                                      \
        if (n > 0) prefetch_row(base + (size_t)ids[0] * d, d);                                                \
        if (n > 1) prefetch_row(base + (size_t)ids[1] * d, d);                                                \
        for (size_t i = 0; i < n; i++) {                                                                      \
            if (i + 2 < n) prefetch_row(base + (size_t)ids[i + 2] * d, d);                                    \
            out[i] = k->FIELD(q, base + (size_t)ids[i] * d, d);                                               \
        }                                                                                                     \
    }

GATHER(sx_dot_gather, dot, SX_M_DOT)
GATHER(sx_l2sq_gather, l2sq, SX_M_L2SQ)
GATHER(sx_l1_gather, l1, SX_M_L1)

void sx_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
