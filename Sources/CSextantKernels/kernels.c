// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// Portable scalar kernels and run-time selection of the kernel table.
//
// Why run-time dispatch rather than -march: the package is consumed as a SwiftPM dependency and may not
// impose compiler flags, and a binary built on an AVX-512 machine must still run on one without it.
// So the vector kernels (kernels_x86.c) are compiled per function with target attributes, and the CPU
// is asked once, here, which of them it can execute.

#include "kernels_internal.h"

#include <math.h>
#include <pthread.h>

// =====================================================================================================
// Scalar
// =====================================================================================================
//
// Eight independent partial sums, lane j taking elements j, j+8, j+16, ...: this breaks the single
// add-latency chain of a naive loop, and because each lane's order is fixed by the source (no
// reassociation needed) the compiler may keep the lanes in SSE registers without -ffast-math.
// The same function serves single and batch calls, so batch results are bit-identical to single ones.

SX_ALWAYS_INLINE float sx_scalar_step(int m, float acc, float q, float x) {
    switch (m) {
    case SX_M_DOT:
        return acc + q * x;
    case SX_M_L2SQ: {
        float t = x - q;
        return acc + t * t;
    }
    default:
        return acc + fabsf(x - q);
    }
}

SX_ALWAYS_INLINE float sx_scalar_row(int m, const float *q, const float *x, size_t d) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        for (size_t j = 0; j < 8; j++) acc[j] = sx_scalar_step(m, acc[j], q[i + j], x[i + j]);
    for (size_t j = 0; i < d; i++, j++) acc[j] = sx_scalar_step(m, acc[j], q[i], x[i]);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float sx_scalar_dot(const float *a, const float *b, size_t d) { return sx_scalar_row(SX_M_DOT, a, b, d); }
static float sx_scalar_l2sq(const float *a, const float *b, size_t d) { return sx_scalar_row(SX_M_L2SQ, a, b, d); }
static float sx_scalar_l1(const float *a, const float *b, size_t d) { return sx_scalar_row(SX_M_L1, a, b, d); }

static void sx_scalar_dot_batch(const float *q, const float *base, size_t n, size_t d, size_t stride, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = sx_scalar_row(SX_M_DOT, q, base + i * stride, d);
}
static void sx_scalar_l2sq_batch(const float *q, const float *base, size_t n, size_t d, size_t stride, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = sx_scalar_row(SX_M_L2SQ, q, base + i * stride, d);
}
static void sx_scalar_l1_batch(const float *q, const float *base, size_t n, size_t d, size_t stride, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = sx_scalar_row(SX_M_L1, q, base + i * stride, d);
}

static const sx_kernels sx_kernels_scalar_table = {
    "scalar",
    sx_scalar_dot,
    sx_scalar_l2sq,
    sx_scalar_l1,
    sx_scalar_dot_batch,
    sx_scalar_l2sq_batch,
    sx_scalar_l1_batch,
};

// =====================================================================================================
// Dispatch
// =====================================================================================================

static pthread_once_t sx_detect_once = PTHREAD_ONCE_INIT;
#if SX_HAVE_X86_KERNELS
static int sx_cpu_avx2;    // AVX2 + FMA, and the OS saves ymm state
static int sx_cpu_avx512;  // AVX-512 F+BW+VL, and the OS saves zmm state
#endif
static const sx_kernels *sx_best_table = &sx_kernels_scalar_table;

static void sx_detect(void) {
#if SX_HAVE_X86_KERNELS
    // __builtin_cpu_supports consults CPUID *and* XGETBV (OS support for the wider register state),
    // so a kernel that hides AVX-512 from guests is respected. cpu_init is needed in case we run
    // before the runtime's own constructor.
    __builtin_cpu_init();
    sx_cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    sx_cpu_avx512 = sx_cpu_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl");
    if (sx_cpu_avx512)
        sx_best_table = &sx_kernels_avx512_table;
    else if (sx_cpu_avx2)
        sx_best_table = &sx_kernels_avx2_table;
#endif
}

const sx_kernels *sx_kernels_best(void) {
    pthread_once(&sx_detect_once, sx_detect);
    return sx_best_table;
}

const sx_kernels *sx_kernels_for(int isa) {
    pthread_once(&sx_detect_once, sx_detect);
    switch (isa) {
    case SX_ISA_SCALAR:
        return &sx_kernels_scalar_table;
#if SX_HAVE_X86_KERNELS
    case SX_ISA_AVX2:
        return sx_cpu_avx2 ? &sx_kernels_avx2_table : NULL;
    case SX_ISA_AVX512:
        return sx_cpu_avx512 ? &sx_kernels_avx512_table : NULL;
#endif
    default:
        return NULL;
    }
}
