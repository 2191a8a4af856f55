// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// int8 dot products for quantized graph traversal: out[i] = Σ q[j]·x_ids[i][j] over int8 codes, in int32.
// A quarter of the float bytes per row, so a traversal step moves a quarter of the memory. The AVX-512BW
// path sign-extends to int16 and uses vpmaddwd (exact: |products| ≤ 127², sums of d ≤ 65536 terms fit in
// int32); the scalar path is the reference.
#include "kernels_internal.h"

static int32_t i8_dot_scalar(const int8_t *a, const int8_t *b, size_t d) {
    int32_t s = 0;
    for (size_t i = 0; i < d; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

void sx_i8_dot_gather_scalar(const int8_t *q, const int8_t *base, const uint32_t *ids, size_t n, size_t d, int32_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = i8_dot_scalar(q, base + (size_t)ids[i] * d, d);
}

#if SX_HAVE_X86_KERNELS
#include <immintrin.h>
#define SX_TBW __attribute__((target("avx512f,avx512bw,avx512vl")))  // the avx512 table requires all three

SX_TBW static inline int32_t i8_dot_avx512(const int8_t *a, const int8_t *b, size_t d) {
    __m512i acc = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m512i x = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512i y = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + i)));
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
    }
    if (i < d) {
        __mmask32 k = (__mmask32)((1ull << (d - i)) - 1);
        __m512i x = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(k, a + i));
        __m512i y = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(k, b + i));
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
    }
    return _mm512_reduce_add_epi32(acc);
}

SX_TBW static void i8_gather_avx512(const int8_t *q, const int8_t *base, const uint32_t *ids, size_t n, size_t d, int32_t *out) {
    for (size_t i = 0; i < n; i++) {
        if (i + 2 < n) {
            const char *p = (const char *)(base + (size_t)ids[i + 2] * d);
            _mm_prefetch(p, _MM_HINT_T0);
            if (d > 64) _mm_prefetch(p + 64, _MM_HINT_T0);
        }
        out[i] = i8_dot_avx512(q, base + (size_t)ids[i] * d, d);
    }
}
#endif

void sx_i8_dot_gather(const int8_t *q, const int8_t *base, const uint32_t *ids, size_t n, size_t d, int32_t *out) {
#if SX_HAVE_X86_KERNELS
    if (sx_kernels_best() == &sx_kernels_avx512_table) {
        i8_gather_avx512(q, base, ids, n, d, out);
        return;
    }
#endif
    sx_i8_dot_gather_scalar(q, base, ids, n, d, out);
}
