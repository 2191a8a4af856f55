// Sextant — an embedded vector database. Licensed under Apache-2.0.
// TEMPORARY placeholder; replaced by the real kernels.
#ifndef SEXTANT_KERNELS_H
#define SEXTANT_KERNELS_H
#include <stddef.h>
#include <stdint.h>
typedef struct sx_kernels {
    const char *name;
    float (*dot)(const float *a, const float *b, size_t d);
    float (*l2sq)(const float *a, const float *b, size_t d);
    float (*l1)(const float *a, const float *b, size_t d);
    void (*dot_batch)(const float *q, const float *base, size_t n, size_t d, size_t stride, float *out);
    void (*l2sq_batch)(const float *q, const float *base, size_t n, size_t d, size_t stride, float *out);
    void (*l1_batch)(const float *q, const float *base, size_t n, size_t d, size_t stride, float *out);
} sx_kernels;
enum { SX_ISA_SCALAR = 0, SX_ISA_AVX2 = 1, SX_ISA_AVX512 = 2 };
const sx_kernels *sx_kernels_best(void);
const sx_kernels *sx_kernels_for(int isa);
uint32_t sx_crc32c(uint32_t crc, const void *data, size_t len);
uint32_t sx_crc32c_sw(uint32_t crc, const void *data, size_t len);
#endif
