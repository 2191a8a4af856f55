// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// Private declarations shared by the kernel translation units (not part of the module's public header).

#ifndef SEXTANT_KERNELS_INTERNAL_H
#define SEXTANT_KERNELS_INTERNAL_H

#include "sextant_kernels.h"

// The three metrics. Kernels are written once as always-inline templates taking the metric as a
// compile-time constant; at -O2 the switch folds away, at -O0 it is merely slow, never wrong.
enum { SX_M_DOT = 0, SX_M_L2SQ = 1, SX_M_L1 = 2 };

#define SX_ALWAYS_INLINE static inline __attribute__((always_inline))

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define SX_HAVE_X86_KERNELS 1
// Defined in kernels_x86.c. Only call through these after the CPU check in kernels.c.
extern const sx_kernels sx_kernels_avx2_table;
extern const sx_kernels sx_kernels_avx512_table;
#else
#define SX_HAVE_X86_KERNELS 0
#endif

#if SX_HAVE_X86_KERNELS
// AVX-512 gather of rows by index (kernels_x86.c); m is SX_M_DOT, SX_M_L2SQ or SX_M_L1.
void sx512_gather(int m, const float *q, const float *base, const uint32_t *ids, size_t n, size_t d, float *out);
#endif

#endif  // SEXTANT_KERNELS_INTERNAL_H
