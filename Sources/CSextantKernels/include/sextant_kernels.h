// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// Distance kernels and CRC32C: the hot loops of exact search and of page checksumming.
//
// Why a C target at all: Swift's SIMD types do not give reliable access to AVX-512 masked loads,
// FMA contraction or per-function target attributes, and the package must build with *no* compiler
// flags (a dependency cannot impose -march). So every vector path here is compiled with a per-function
// `__attribute__((target(...)))` and the best one is picked at run time from CPUID
// (`__builtin_cpu_supports`). One binary runs everywhere and still uses AVX-512 where it exists.
//
// Contract shared by all kernel tables (see kernels.c):
//   * Pointers may be unaligned; counts are element counts (floats), never bytes.
//   * d == 0 gives 0; n == 0 writes nothing.
//   * Within one table, `X_batch(q, base, ...)[i]` is bit-for-bit equal to `X(q, base + i*stride, d)`:
//     a vector's score does not depend on which call computed it or on its position in a batch, so
//     exact search, re-ranking and single look-ups always agree. Different tables (ISAs) round
//     differently and agree only to within float rounding.
//   * `dot(a, b)` and `l2sq`/`l1` are symmetric in (a, b) bit-for-bit.
//   * Every function is reentrant and thread-safe; the tables are immutable.

#ifndef SEXTANT_KERNELS_H
#define SEXTANT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sx_kernels {
    /// "avx512", "avx2" or "scalar".
    const char *name;
    /// sum a[i]*b[i]
    float (*dot)(const float *a, const float *b, size_t d);
    /// sum (a[i]-b[i])^2 (squared Euclidean distance; no square root)
    float (*l2sq)(const float *a, const float *b, size_t d);
    /// sum |a[i]-b[i]|
    float (*l1)(const float *a, const float *b, size_t d);
    /// out[i] = f(q, base + i*stride) for i in 0..<n. `stride` is in floats and must be >= d.
    void (*dot_batch)(const float *q, const float *base, size_t n, size_t d, size_t stride, float *out);
    void (*l2sq_batch)(const float *q, const float *base, size_t n, size_t d, size_t stride, float *out);
    void (*l1_batch)(const float *q, const float *base, size_t n, size_t d, size_t stride, float *out);
} sx_kernels;

enum { SX_ISA_SCALAR = 0, SX_ISA_AVX2 = 1, SX_ISA_AVX512 = 2 };

/// The fastest table this CPU (and OS) supports. Chosen once, on first call, thread-safely;
/// the returned pointer is valid for the life of the process.
const sx_kernels *sx_kernels_best(void);

/// The table for one ISA (`SX_ISA_*`), or NULL if this CPU/OS cannot run it or it was not compiled
/// in (non-x86 builds have only SX_ISA_SCALAR). Used by tests and benchmarks to compare paths.
const sx_kernels *sx_kernels_for(int isa);

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), standard init/final inversion:
/// sx_crc32c(0, "123456789", 9) == 0xE3069283. Chains: sx_crc32c(sx_crc32c(0, a), b) == sx_crc32c(0, a || b).
/// Uses the SSE4.2 `crc32` instruction when available, else `sx_crc32c_sw`. `data` may be NULL iff len == 0.
uint32_t sx_crc32c(uint32_t crc, const void *data, size_t len);

/// Portable slicing-by-8 CRC-32C; always the same result as `sx_crc32c`.
uint32_t sx_crc32c_sw(uint32_t crc, const void *data, size_t len);

// Distances from q to the rows base + ids[i]*d (graph neighbours), prefetching ahead. Same arithmetic as
// the best kernels' single-row functions.
void sx_dot_gather(const float *q, const float *base, const uint32_t *ids, size_t n, size_t d, float *out);
void sx_l2sq_gather(const float *q, const float *base, const uint32_t *ids, size_t n, size_t d, float *out);
void sx_l1_gather(const float *q, const float *base, const uint32_t *ids, size_t n, size_t d, float *out);
void sx_prefetch(const void *p);

// int8 dot products of q with rows base + ids[i]*d (quantized traversal); exact int32 results.
void sx_i8_dot_gather(const int8_t *q, const int8_t *base, const uint32_t *ids, size_t n, size_t d, int32_t *out);
// The portable reference (tests compare the fast path against it).
void sx_i8_dot_gather_scalar(const int8_t *q, const int8_t *base, const uint32_t *ids, size_t n, size_t d, int32_t *out);

// Sum of squares of v in double precision, in a fixed order (deterministic everywhere). Finite iff every
// element is finite (a float squared cannot overflow a double); 0 iff every element is 0.
double sx_sumsq_f64(const float *v, size_t d);

// Starts writeback of a file range without waiting (Linux sync_file_range SYNC_FILE_RANGE_WRITE): large
// sequential writes then reach the disk while the writer goes on, so the final fsync has little left to
// do. Advisory only (no durability promise); returns 0, or -1 with errno set; a no-op elsewhere.
int sx_start_writeback(int fd, int64_t offset, int64_t length);

/// CPUs in the calling thread's affinity mask (sched_getaffinity, which needs _GNU_SOURCE); 0 if unknown.
int sx_affinity_cpu_count(void);

#ifdef __cplusplus
}
#endif



#endif  // SEXTANT_KERNELS_H
