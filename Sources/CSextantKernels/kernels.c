// Sextant — an embedded vector database. Licensed under Apache-2.0.
// TEMPORARY placeholder; replaced by the real kernels.
#include "sextant_kernels.h"
#include <math.h>
static float dot(const float *a, const float *b, size_t d) { float s = 0; for (size_t i = 0; i < d; i++) s += a[i]*b[i]; return s; }
static float l2sq(const float *a, const float *b, size_t d) { float s = 0; for (size_t i = 0; i < d; i++) { float t = a[i]-b[i]; s += t*t; } return s; }
static float l1(const float *a, const float *b, size_t d) { float s = 0; for (size_t i = 0; i < d; i++) s += fabsf(a[i]-b[i]); return s; }
static void dotb(const float *q, const float *b, size_t n, size_t d, size_t st, float *o) { for (size_t i = 0; i < n; i++) o[i] = dot(q, b + i*st, d); }
static void l2b(const float *q, const float *b, size_t n, size_t d, size_t st, float *o) { for (size_t i = 0; i < n; i++) o[i] = l2sq(q, b + i*st, d); }
static void l1b(const float *q, const float *b, size_t n, size_t d, size_t st, float *o) { for (size_t i = 0; i < n; i++) o[i] = l1(q, b + i*st, d); }
static const sx_kernels scalar = {"scalar", dot, l2sq, l1, dotb, l2b, l1b};
const sx_kernels *sx_kernels_best(void) { return &scalar; }
const sx_kernels *sx_kernels_for(int isa) { return isa == 0 ? &scalar : 0; }
static uint32_t table[256]; static int init;
uint32_t sx_crc32c_sw(uint32_t crc, const void *data, size_t len) {
    if (!init) { for (uint32_t i = 0; i < 256; i++) { uint32_t c = i; for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1; table[i] = c; } init = 1; }
    const unsigned char *p = data; crc = ~crc; while (len--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8); return ~crc;
}
uint32_t sx_crc32c(uint32_t crc, const void *data, size_t len) { return sx_crc32c_sw(crc, data, len); }
