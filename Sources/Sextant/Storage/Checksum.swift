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
