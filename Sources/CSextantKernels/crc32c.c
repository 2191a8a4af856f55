// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// CRC-32C (Castagnoli), used for page and WAL record checksums.
//
// Two implementations with identical results:
//   * sx_crc32c_sw: slicing-by-8 (eight 256-entry tables, 8 bytes per step); portable.
//   * the SSE4.2 `crc32` instruction, selected at run time. The instruction has a 3-cycle latency but
//     a throughput of one per cycle, so a single dependent chain runs at a third of the possible speed.
//     Large buffers are therefore cut into three adjacent blocks whose CRCs are computed in parallel and
//     then combined. This is the scheme of Mark Adler's crc32c.c (zlib author), which is well tested.
//
// Combining: the CRC register is linear over GF(2). If r_A is the register after block A and r_B the
// register after block B *started from 0*, the register after A||B is shift(r_A, |B|) ^ r_B, where
// shift(r, n) advances r over n zero bytes. shift is a linear map of 32 bits, stored as four 256-entry
// tables (one per byte of r) for the two block sizes used; they are built once at first use.

#include "kernels_internal.h"

#include <pthread.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define SX_CRC_HW 1
#include <immintrin.h>
#else
#define SX_CRC_HW 0
#endif

#define SX_CRC32C_POLY 0x82F63B78u  // Castagnoli polynomial 0x1EDC6F41, bit-reflected

static uint32_t sx_crc_table[8][256];  // sx_crc_table[k][b]: byte b followed by k zero bytes
static pthread_once_t sx_crc_once = PTHREAD_ONCE_INIT;

#if SX_CRC_HW
// Block sizes for the 3-way interleave. LONG amortises the two table look-ups of a combine over 24 KiB;
// SHORT lets buffers from 768 bytes up use all three streams too.
#define SX_CRC_LONG 8192
#define SX_CRC_SHORT 256
static uint32_t sx_crc_long[4][256];   // shift over SX_CRC_LONG zero bytes
static uint32_t sx_crc_short[4][256];  // shift over SX_CRC_SHORT zero bytes
static int sx_crc_have_hw;
#endif

#if SX_CRC_HW
// Raw register (no inversions) advanced over n zero bytes, one byte at a time. Initialisation only.
static uint32_t sx_crc_zeros_slow(uint32_t r, size_t n) {
    while (n--) r = sx_crc_table[0][r & 0xff] ^ (r >> 8);
    return r;
}

// Build the tables of the linear map "advance over n zero bytes": column k is the image of bit k,
// and op[j][b] is the XOR of the columns of the bits set in byte j of the register.
static void sx_crc_zeros_op(uint32_t op[4][256], size_t n) {
    uint32_t col[32];
    for (int k = 0; k < 32; k++) col[k] = sx_crc_zeros_slow(1u << k, n);
    for (int j = 0; j < 4; j++) {
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int t = 0; t < 8; t++)
                if ((b >> t) & 1) v ^= col[8 * j + t];
            op[j][b] = v;
        }
    }
}

static inline uint32_t sx_crc_shift(const uint32_t op[4][256], uint32_t r) {
    return op[0][r & 0xff] ^ op[1][(r >> 8) & 0xff] ^ op[2][(r >> 16) & 0xff] ^ op[3][r >> 24];
}
#endif

static void sx_crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ SX_CRC32C_POLY : c >> 1;
        sx_crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            sx_crc_table[k][i] = (sx_crc_table[k - 1][i] >> 8) ^ sx_crc_table[0][sx_crc_table[k - 1][i] & 0xff];
#if SX_CRC_HW
    __builtin_cpu_init();
    sx_crc_have_hw = __builtin_cpu_supports("sse4.2");
    if (sx_crc_have_hw) {
        sx_crc_zeros_op(sx_crc_long, SX_CRC_LONG);
        sx_crc_zeros_op(sx_crc_short, SX_CRC_SHORT);
    }
#endif
}

static inline uint32_t sx_load_le32(const unsigned char *p) {
    // Byte-wise so it is correct on big-endian hosts too; compilers turn it into one load on x86/arm64.
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

// Slicing-by-8 on the raw register.
static uint32_t sx_crc_sw_raw(uint32_t r, const unsigned char *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) {
        r = sx_crc_table[0][(r ^ *p++) & 0xff] ^ (r >> 8);
        len--;
    }
    while (len >= 8) {
        uint32_t lo = sx_load_le32(p) ^ r, hi = sx_load_le32(p + 4);
        r = sx_crc_table[7][lo & 0xff] ^ sx_crc_table[6][(lo >> 8) & 0xff] ^ sx_crc_table[5][(lo >> 16) & 0xff] ^
            sx_crc_table[4][lo >> 24] ^ sx_crc_table[3][hi & 0xff] ^ sx_crc_table[2][(hi >> 8) & 0xff] ^
            sx_crc_table[1][(hi >> 16) & 0xff] ^ sx_crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) r = sx_crc_table[0][(r ^ *p++) & 0xff] ^ (r >> 8);
    return r;
}

#if SX_CRC_HW
#define SX_SSE42 __attribute__((target("sse4.2")))

static inline uint64_t sx_load64(const unsigned char *p) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);  // x86 is little-endian and tolerates unaligned loads
    return v;
}

// Three adjacent blocks of `blk` bytes: stream 0 continues r, streams 1 and 2 start at 0 and are folded
// in with the shift tables. Consumes 3*blk bytes.
#define SX_CRC_3WAY(blk, op)                                                  \
    while (len >= 3 * (size_t)(blk)) {                                        \
        uint64_t c1 = 0, c2 = 0;                                              \
        const unsigned char *end = p + (blk);                                 \
        do {                                                                  \
            c0 = _mm_crc32_u64(c0, sx_load64(p));                             \
            c1 = _mm_crc32_u64(c1, sx_load64(p + (blk)));                     \
            c2 = _mm_crc32_u64(c2, sx_load64(p + 2 * (blk)));                 \
            p += 8;                                                           \
        } while (p < end);                                                    \
        c0 = sx_crc_shift(op, (uint32_t)c0) ^ (uint32_t)c1;                   \
        c0 = sx_crc_shift(op, (uint32_t)c0) ^ (uint32_t)c2;                   \
        p += 2 * (size_t)(blk);                                               \
        len -= 3 * (size_t)(blk);                                             \
    }

SX_SSE42 static uint32_t sx_crc_hw_raw(uint32_t r, const unsigned char *p, size_t len) {
    uint64_t c0 = r;
    while (len && ((uintptr_t)p & 7)) {  // align so the 8-byte loads never straddle a line needlessly
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        len--;
    }
    SX_CRC_3WAY(SX_CRC_LONG, sx_crc_long)
    SX_CRC_3WAY(SX_CRC_SHORT, sx_crc_short)
    while (len >= 8) {
        c0 = _mm_crc32_u64(c0, sx_load64(p));
        p += 8;
        len -= 8;
    }
    while (len) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        len--;
    }
    return (uint32_t)c0;
}
#undef SX_CRC_3WAY
#endif

uint32_t sx_crc32c_sw(uint32_t crc, const void *data, size_t len) {
    pthread_once(&sx_crc_once, sx_crc_init);
    return ~sx_crc_sw_raw(~crc, (const unsigned char *)data, len);
}

uint32_t sx_crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&sx_crc_once, sx_crc_init);
#if SX_CRC_HW
    if (sx_crc_have_hw) return ~sx_crc_hw_raw(~crc, (const unsigned char *)data, len);
#endif
    return ~sx_crc_sw_raw(~crc, (const unsigned char *)data, len);
}
