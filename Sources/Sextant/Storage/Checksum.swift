// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantKernels

/// CRC-32C (Castagnoli), the checksum of every WAL record, segment section, bitmap and manifest.
///
/// Computed by the SSE4.2 `crc32` instruction when the CPU has it (see `CSextantKernels`).
package enum CRC32C {
    @inline(__always)
    package static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        return sx_crc32c(seed, base, bytes.count)
    }

    package static func checksum(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, seed: seed) }
    }
}

/// MurmurHash3's 64-bit finalizer: key hashes (Bloom filters) and the graph build's level draws.
@inline(__always)
func mix64(_ x: UInt64) -> UInt64 {
    var h = x
    h ^= h >> 33
    h = h &* 0xff51_afd7_ed55_8ccd
    h ^= h >> 33
    h = h &* 0xc4ce_b9fe_1a85_ec53
    h ^= h >> 33
    return h
}
