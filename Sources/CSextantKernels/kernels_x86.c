// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// AVX2+FMA and AVX-512 distance kernels.
//
// Every function here carries a `target(...)` attribute instead of the translation unit being built
// with -mavx512f: the package takes no compiler flags, and code outside these functions must stay
// runnable on any x86-64. Nothing in this file may be called before kernels.c has checked the CPU.
//
// Shape of every kernel (both ISAs):
//   * A row is consumed 4 vectors at a time into 4 independent accumulators. With one accumulator every
//     FMA waits for the previous one (4-cycle latency on current cores), capping a row at 1 vector per
//     4 cycles; with two loads per FMA the loop can issue about one FMA per cycle, and 4 chains are what
//     it takes to cover the latency at that rate for L1/L2-resident rows.
//   * Leftover whole vectors go to accumulators 0,1,2 in turn; the final partial vector is loaded with a
//     mask (AVX-512 `maskz_loadu`, AVX2 `maskload`), so lanes past `d` read as 0 and contribute exactly 0
//     to every metric, and memory past the row is never touched (masked-off lanes cannot fault).
//   * Batches of short rows (d <= SX_INTERLEAVE_MAX_D) are scored R rows at a time (R = 4 for AVX-512,
//     2 for AVX2: what fits in the register file), sharing the query loads and doing the horizontal sums
//     of R rows together; for short rows the per-row reduction is a large share of the work.
//     Longer rows are scored one after another: measured on Zen 4, interleaving R long rows splits one
//     sequential stream into R streams and lost ~30% of DRAM bandwidth (d=128, 512 MB: 25 -> 17-19 GB/s)
//     and ~10% in L2, while a row at a time already runs at the memory or L2 limit.
//   * Per row the arithmetic is *exactly* the single-row sequence (same accumulator for the same
//     elements, same reduction tree), so batch and single results are bit-identical; that is part of
//     the public contract (see sextant_kernels.h).
//   * No software prefetch. For the contiguous and padded layouts Sextant uses, the hardware stream
//     prefetcher already runs ahead of a row-at-a-time scan; prefetching the next row (or block) with
//     one PREFETCHT0 per line measured 5-15% *slower* at d=128..768 (more load-port traffic, no
//     fewer misses), and helped only ~5% for rows with large gaps between them (stride >= 2d).

#include "kernels_internal.h"

#if SX_HAVE_X86_KERNELS

#include <immintrin.h>

#define SX_T512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define SX_T256 __attribute__((target("avx2,fma")))

// Rows of at most this many floats are scored several at a time (see above). 64 floats = 256 bytes.
#define SX_INTERLEAVE_MAX_D 64

// =====================================================================================================
// AVX-512
// =====================================================================================================

SX_T512 SX_ALWAYS_INLINE __m512 sx512_step(int m, __m512 acc, __m512 q, __m512 x) {
    switch (m) {
    case SX_M_DOT:
        return _mm512_fmadd_ps(q, x, acc);
    case SX_M_L2SQ: {
        __m512 t = _mm512_sub_ps(x, q);
        return _mm512_fmadd_ps(t, t, acc);
    }
    default: {
        __m512 t = _mm512_sub_ps(x, q);
        return _mm512_add_ps(acc, _mm512_abs_ps(t));  // abs_ps is AVX512F (an integer AND); and_ps would need DQ
    }
    }
}

// 16 lanes -> 4 lanes: (lo256 + hi256), then (lo128 + hi128). The last two levels are done with hadd,
// either for one row (sx_hsum4) or for four rows at once (sx_hsum4x4), which give identical per-row sums.
SX_T512 SX_ALWAYS_INLINE __m128 sx512_fold(__m512 v) {
    __m256 lo = _mm512_castps512_ps256(v);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));  // extractf32x8 needs DQ
    __m256 s = _mm256_add_ps(lo, hi);
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// Shared by both ISAs, so only the SSE3 they have in common (hadd) is required.
#define SX_TSSE3 __attribute__((target("sse3")))

// (u0+u1)+(u2+u3) for one row.
SX_TSSE3 SX_ALWAYS_INLINE float sx_hsum4(__m128 u) {
    __m128 h = _mm_hadd_ps(u, u);
    h = _mm_hadd_ps(h, h);
    return _mm_cvtss_f32(h);
}

// The same (u0+u1)+(u2+u3) for four rows, lane r = row r.
SX_TSSE3 SX_ALWAYS_INLINE __m128 sx_hsum4x4(__m128 a, __m128 b, __m128 c, __m128 d) {
    return _mm_hadd_ps(_mm_hadd_ps(a, b), _mm_hadd_ps(c, d));
}

SX_T512 SX_ALWAYS_INLINE __mmask16 sx512_tailmask(size_t r) {  // 1 <= r <= 15
    return (__mmask16)((1u << r) - 1u);
}

// One row. The accumulator assignment here is the reference the block kernel must reproduce.
SX_T512 SX_ALWAYS_INLINE __m128 sx512_row(int m, const float *q, const float *x, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= d; i += 64) {
        a0 = sx512_step(m, a0, _mm512_loadu_ps(q + i), _mm512_loadu_ps(x + i));
        a1 = sx512_step(m, a1, _mm512_loadu_ps(q + i + 16), _mm512_loadu_ps(x + i + 16));
        a2 = sx512_step(m, a2, _mm512_loadu_ps(q + i + 32), _mm512_loadu_ps(x + i + 32));
        a3 = sx512_step(m, a3, _mm512_loadu_ps(q + i + 48), _mm512_loadu_ps(x + i + 48));
    }
    if (i + 16 <= d) {
        a0 = sx512_step(m, a0, _mm512_loadu_ps(q + i), _mm512_loadu_ps(x + i));
        i += 16;
        if (i + 16 <= d) {
            a1 = sx512_step(m, a1, _mm512_loadu_ps(q + i), _mm512_loadu_ps(x + i));
            i += 16;
            if (i + 16 <= d) {
                a2 = sx512_step(m, a2, _mm512_loadu_ps(q + i), _mm512_loadu_ps(x + i));
                i += 16;
            }
        }
    }
    if (i < d) {
        __mmask16 k = sx512_tailmask(d - i);
        a3 = sx512_step(m, a3, _mm512_maskz_loadu_ps(k, q + i), _mm512_maskz_loadu_ps(k, x + i));
    }
    return sx512_fold(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// Four rows x0..x3 = x, x+stride, x+2*stride, x+3*stride; results to out[0..3]. Correct for any d,
// used for d <= SX_INTERLEAVE_MAX_D.
SX_T512 SX_ALWAYS_INLINE void sx512_block4p(int m, const float *q, const float *x0, const float *x1,
                                            const float *x2, const float *x3, size_t d, float *out) {
    const __m512 z = _mm512_setzero_ps();
    __m512 a00 = z, a01 = z, a02 = z, a03 = z;  // row 0, accumulators 0..3
    __m512 a10 = z, a11 = z, a12 = z, a13 = z;
    __m512 a20 = z, a21 = z, a22 = z, a23 = z;
    __m512 a30 = z, a31 = z, a32 = z, a33 = z;
    size_t i = 0;
    for (; i + 64 <= d; i += 64) {
        __m512 q0 = _mm512_loadu_ps(q + i), q1 = _mm512_loadu_ps(q + i + 16);
        __m512 q2 = _mm512_loadu_ps(q + i + 32), q3 = _mm512_loadu_ps(q + i + 48);
#define SX512_ROW4(a_0, a_1, a_2, a_3, xr)                                 \
    a_0 = sx512_step(m, a_0, q0, _mm512_loadu_ps(xr + i));                 \
    a_1 = sx512_step(m, a_1, q1, _mm512_loadu_ps(xr + i + 16));            \
    a_2 = sx512_step(m, a_2, q2, _mm512_loadu_ps(xr + i + 32));            \
    a_3 = sx512_step(m, a_3, q3, _mm512_loadu_ps(xr + i + 48));
        SX512_ROW4(a00, a01, a02, a03, x0)
        SX512_ROW4(a10, a11, a12, a13, x1)
        SX512_ROW4(a20, a21, a22, a23, x2)
        SX512_ROW4(a30, a31, a32, a33, x3)
#undef SX512_ROW4
    }
#define SX512_ONE(acc0, acc1, acc2, acc3, lq)                              \
    acc0 = sx512_step(m, acc0, lq, _mm512_loadu_ps(x0 + i));               \
    acc1 = sx512_step(m, acc1, lq, _mm512_loadu_ps(x1 + i));               \
    acc2 = sx512_step(m, acc2, lq, _mm512_loadu_ps(x2 + i));               \
    acc3 = sx512_step(m, acc3, lq, _mm512_loadu_ps(x3 + i));
    if (i + 16 <= d) {
        __m512 qv = _mm512_loadu_ps(q + i);
        SX512_ONE(a00, a10, a20, a30, qv)
        i += 16;
        if (i + 16 <= d) {
            qv = _mm512_loadu_ps(q + i);
            SX512_ONE(a01, a11, a21, a31, qv)
            i += 16;
            if (i + 16 <= d) {
                qv = _mm512_loadu_ps(q + i);
                SX512_ONE(a02, a12, a22, a32, qv)
                i += 16;
            }
        }
    }
#undef SX512_ONE
    if (i < d) {
        __mmask16 k = sx512_tailmask(d - i);
        __m512 qv = _mm512_maskz_loadu_ps(k, q + i);
        a03 = sx512_step(m, a03, qv, _mm512_maskz_loadu_ps(k, x0 + i));
        a13 = sx512_step(m, a13, qv, _mm512_maskz_loadu_ps(k, x1 + i));
        a23 = sx512_step(m, a23, qv, _mm512_maskz_loadu_ps(k, x2 + i));
        a33 = sx512_step(m, a33, qv, _mm512_maskz_loadu_ps(k, x3 + i));
    }
    __m128 u0 = sx512_fold(_mm512_add_ps(_mm512_add_ps(a00, a01), _mm512_add_ps(a02, a03)));
    __m128 u1 = sx512_fold(_mm512_add_ps(_mm512_add_ps(a10, a11), _mm512_add_ps(a12, a13)));
    __m128 u2 = sx512_fold(_mm512_add_ps(_mm512_add_ps(a20, a21), _mm512_add_ps(a22, a23)));
    __m128 u3 = sx512_fold(_mm512_add_ps(_mm512_add_ps(a30, a31), _mm512_add_ps(a32, a33)));
    _mm_storeu_ps(out, sx_hsum4x4(u0, u1, u2, u3));
}

SX_T512 SX_ALWAYS_INLINE void sx512_block4(int m, const float *q, const float *x, size_t d, size_t stride,
                                           float *out) {
    sx512_block4p(m, q, x, x + stride, x + 2 * stride, x + 3 * stride, d, out);
}

SX_T512 SX_ALWAYS_INLINE void sx512_batch(int m, const float *q, const float *base, size_t n, size_t d,
                                          size_t stride, float *out) {
    size_t i = 0;
    if (d <= SX_INTERLEAVE_MAX_D)
        for (; i + 4 <= n; i += 4) sx512_block4(m, q, base + i * stride, d, stride, out + i);
    for (; i < n; i++) out[i] = sx_hsum4(sx512_row(m, q, base + i * stride, d));
}

SX_T512 static float sx512_dot(const float *a, const float *b, size_t d) {
    return sx_hsum4(sx512_row(SX_M_DOT, a, b, d));
}
SX_T512 static float sx512_l2sq(const float *a, const float *b, size_t d) {
    return sx_hsum4(sx512_row(SX_M_L2SQ, a, b, d));
}
SX_T512 static float sx512_l1(const float *a, const float *b, size_t d) {
    return sx_hsum4(sx512_row(SX_M_L1, a, b, d));
}
SX_T512 static void sx512_dot_batch(const float *q, const float *base, size_t n, size_t d, size_t stride,
                                    float *out) {
    sx512_batch(SX_M_DOT, q, base, n, d, stride, out);
}
SX_T512 static void sx512_l2sq_batch(const float *q, const float *base, size_t n, size_t d, size_t stride,
                                     float *out) {
    sx512_batch(SX_M_L2SQ, q, base, n, d, stride, out);
}
SX_T512 static void sx512_l1_batch(const float *q, const float *base, size_t n, size_t d, size_t stride,
                                   float *out) {
    sx512_batch(SX_M_L1, q, base, n, d, stride, out);
}

// Rows picked by index (graph neighbours): scattered, so latency-bound. Four rows at a time keep four
// independent miss streams in flight (unlike contiguous batches, where interleaving costs bandwidth), and
// the next group's first lines are prefetched. Results equal the single-row kernel's bit for bit.
SX_T512 void sx512_gather(int m, const float *q, const float *base, const uint32_t *ids, size_t n, size_t d,
                          float *out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        if (i + 8 <= n)
            for (size_t j = 4; j < 8; j++) {
                const char *p = (const char *)(base + (size_t)ids[i + j] * d);
                _mm_prefetch(p, _MM_HINT_T0);
                _mm_prefetch(p + 64, _MM_HINT_T0);
            }
        sx512_block4p(m, q, base + (size_t)ids[i] * d, base + (size_t)ids[i + 1] * d, base + (size_t)ids[i + 2] * d,
                      base + (size_t)ids[i + 3] * d, d, out + i);
    }
    for (; i < n; i++) out[i] = sx_hsum4(sx512_row(m, q, base + (size_t)ids[i] * d, d));
}

const sx_kernels sx_kernels_avx512_table = {
    "avx512", sx512_dot, sx512_l2sq, sx512_l1, sx512_dot_batch, sx512_l2sq_batch, sx512_l1_batch,
};

// =====================================================================================================
// AVX2 + FMA
// =====================================================================================================

// 8 x -1 then 8 x 0: loading 8 ints at (sx256_masks + 8 - r) gives a mask of r leading lanes.
static const int32_t sx256_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

SX_T256 SX_ALWAYS_INLINE __m256i sx256_tailmask(size_t r) {  // 1 <= r <= 7
    return _mm256_loadu_si256((const __m256i *)(sx256_masks + 8 - r));
}

SX_T256 SX_ALWAYS_INLINE __m256 sx256_step(int m, __m256 acc, __m256 q, __m256 x) {
    switch (m) {
    case SX_M_DOT:
        return _mm256_fmadd_ps(q, x, acc);
    case SX_M_L2SQ: {
        __m256 t = _mm256_sub_ps(x, q);
        return _mm256_fmadd_ps(t, t, acc);
    }
    default: {
        __m256 t = _mm256_sub_ps(x, q);
        return _mm256_add_ps(acc, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), t));
    }
    }
}

SX_T256 SX_ALWAYS_INLINE __m128 sx256_fold(__m256 v) {
    return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
}

SX_T256 SX_ALWAYS_INLINE __m128 sx256_row(int m, const float *q, const float *x, size_t d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        a0 = sx256_step(m, a0, _mm256_loadu_ps(q + i), _mm256_loadu_ps(x + i));
        a1 = sx256_step(m, a1, _mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(x + i + 8));
        a2 = sx256_step(m, a2, _mm256_loadu_ps(q + i + 16), _mm256_loadu_ps(x + i + 16));
        a3 = sx256_step(m, a3, _mm256_loadu_ps(q + i + 24), _mm256_loadu_ps(x + i + 24));
    }
    if (i + 8 <= d) {
        a0 = sx256_step(m, a0, _mm256_loadu_ps(q + i), _mm256_loadu_ps(x + i));
        i += 8;
        if (i + 8 <= d) {
            a1 = sx256_step(m, a1, _mm256_loadu_ps(q + i), _mm256_loadu_ps(x + i));
            i += 8;
            if (i + 8 <= d) {
                a2 = sx256_step(m, a2, _mm256_loadu_ps(q + i), _mm256_loadu_ps(x + i));
                i += 8;
            }
        }
    }
    if (i < d) {
        // vmaskmovps: masked-off lanes read as 0 and never fault, like AVX-512 masked loads, so the tail
        // stays in the vector accumulators (and in the same place as in the 2-row kernel).
        __m256i k = sx256_tailmask(d - i);
        a3 = sx256_step(m, a3, _mm256_maskload_ps(q + i, k), _mm256_maskload_ps(x + i, k));
    }
    return sx256_fold(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

// Two rows x, x+stride (AVX2 has 16 ymm registers: 8 accumulators + 4 query vectors + temporaries).
// Correct for any d, used for d <= SX_INTERLEAVE_MAX_D.
SX_T256 SX_ALWAYS_INLINE void sx256_block2(int m, const float *q, const float *x, size_t d, size_t stride,
                                           float *out) {
    const float *x0 = x, *x1 = x + stride;
    const __m256 z = _mm256_setzero_ps();
    __m256 a00 = z, a01 = z, a02 = z, a03 = z;
    __m256 a10 = z, a11 = z, a12 = z, a13 = z;
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
        __m256 q2 = _mm256_loadu_ps(q + i + 16), q3 = _mm256_loadu_ps(q + i + 24);
        a00 = sx256_step(m, a00, q0, _mm256_loadu_ps(x0 + i));
        a01 = sx256_step(m, a01, q1, _mm256_loadu_ps(x0 + i + 8));
        a02 = sx256_step(m, a02, q2, _mm256_loadu_ps(x0 + i + 16));
        a03 = sx256_step(m, a03, q3, _mm256_loadu_ps(x0 + i + 24));
        a10 = sx256_step(m, a10, q0, _mm256_loadu_ps(x1 + i));
        a11 = sx256_step(m, a11, q1, _mm256_loadu_ps(x1 + i + 8));
        a12 = sx256_step(m, a12, q2, _mm256_loadu_ps(x1 + i + 16));
        a13 = sx256_step(m, a13, q3, _mm256_loadu_ps(x1 + i + 24));
    }
    if (i + 8 <= d) {
        __m256 qv = _mm256_loadu_ps(q + i);
        a00 = sx256_step(m, a00, qv, _mm256_loadu_ps(x0 + i));
        a10 = sx256_step(m, a10, qv, _mm256_loadu_ps(x1 + i));
        i += 8;
        if (i + 8 <= d) {
            qv = _mm256_loadu_ps(q + i);
            a01 = sx256_step(m, a01, qv, _mm256_loadu_ps(x0 + i));
            a11 = sx256_step(m, a11, qv, _mm256_loadu_ps(x1 + i));
            i += 8;
            if (i + 8 <= d) {
                qv = _mm256_loadu_ps(q + i);
                a02 = sx256_step(m, a02, qv, _mm256_loadu_ps(x0 + i));
                a12 = sx256_step(m, a12, qv, _mm256_loadu_ps(x1 + i));
                i += 8;
            }
        }
    }
    if (i < d) {
        __m256i k = sx256_tailmask(d - i);
        __m256 qv = _mm256_maskload_ps(q + i, k);
        a03 = sx256_step(m, a03, qv, _mm256_maskload_ps(x0 + i, k));
        a13 = sx256_step(m, a13, qv, _mm256_maskload_ps(x1 + i, k));
    }
    __m128 u0 = sx256_fold(_mm256_add_ps(_mm256_add_ps(a00, a01), _mm256_add_ps(a02, a03)));
    __m128 u1 = sx256_fold(_mm256_add_ps(_mm256_add_ps(a10, a11), _mm256_add_ps(a12, a13)));
    // Same (u0+u1)+(u2+u3) tree as sx_hsum4; lanes 0 and 1 hold the two rows.
    __m128 h = _mm_hadd_ps(_mm_hadd_ps(u0, u1), _mm_setzero_ps());
    _mm_storel_pi((__m64 *)out, h);
}

SX_T256 SX_ALWAYS_INLINE void sx256_batch(int m, const float *q, const float *base, size_t n, size_t d,
                                          size_t stride, float *out) {
    size_t i = 0;
    if (d <= SX_INTERLEAVE_MAX_D)
        for (; i + 2 <= n; i += 2) sx256_block2(m, q, base + i * stride, d, stride, out + i);
    for (; i < n; i++) out[i] = sx_hsum4(sx256_row(m, q, base + i * stride, d));
}

SX_T256 static float sx256_dot(const float *a, const float *b, size_t d) {
    return sx_hsum4(sx256_row(SX_M_DOT, a, b, d));
}
SX_T256 static float sx256_l2sq(const float *a, const float *b, size_t d) {
    return sx_hsum4(sx256_row(SX_M_L2SQ, a, b, d));
}
SX_T256 static float sx256_l1(const float *a, const float *b, size_t d) {
    return sx_hsum4(sx256_row(SX_M_L1, a, b, d));
}
SX_T256 static void sx256_dot_batch(const float *q, const float *base, size_t n, size_t d, size_t stride,
                                    float *out) {
    sx256_batch(SX_M_DOT, q, base, n, d, stride, out);
}
SX_T256 static void sx256_l2sq_batch(const float *q, const float *base, size_t n, size_t d, size_t stride,
                                     float *out) {
    sx256_batch(SX_M_L2SQ, q, base, n, d, stride, out);
}
SX_T256 static void sx256_l1_batch(const float *q, const float *base, size_t n, size_t d, size_t stride,
                                   float *out) {
    sx256_batch(SX_M_L1, q, base, n, d, stride, out);
}

const sx_kernels sx_kernels_avx2_table = {
    "avx2", sx256_dot, sx256_l2sq, sx256_l1, sx256_dot_batch, sx256_l2sq_batch, sx256_l1_batch,
};

#endif  // SX_HAVE_X86_KERNELS
