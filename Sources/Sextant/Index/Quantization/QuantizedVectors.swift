// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a collection's vectors are compressed for graph traversal.
public enum Quantization: String, Sendable, Codable, CaseIterable {
    /// Traverse on the Float32 vectors.
    case none
    /// Traverse on int8 codes (a quarter of the bytes), then rescore the candidates with the Float32
    /// vectors, so results carry exact scores. For cosine, dot and euclidean.
    case int8
}

/// Scalar int8 codes of a segment's vectors: `code = clamp(round(x / scale), −127…127)` with one scale per
/// segment, chosen so that 99.99% of |x| fit (outliers clip). Cosine quantizes the normalized vectors.
///
/// ```
/// file   := header codes (aligned to 64) squaredNorms footer
/// header := magic "SEXTQ8\0\0" | version:u32 (=1) | dimension:u32 | count:u64 | scale:f32 | metric:u8 | pad[3]
///           | segmentID:u64 | reserved[16] | crc:u32                                   (64 bytes; crc over 0..<60)
/// codes  := int8 × count·dimension; squaredNorms := f32 × count (‖x‖², exact, for euclidean)
/// footer := codesCRC:u32 | normsCRC:u32 | magic "SEXTQ8E\0"                            (16 bytes)
/// ```
package final class QuantizedVectors: @unchecked Sendable {  // immutable but for the atomic flag
    package static let magic: [UInt8] = Array("SEXTQ8\0\0".utf8)
    package static let footerMagic: [UInt8] = Array("SEXTQ8E\0".utf8)
    package static let version: UInt32 = 1

    package let count: Int
    package let dimension: Int
    package let scale: Float
    package let codes: UnsafePointer<Int8>
    package let squaredNorms: UnsafePointer<Float>
    package let path: String
    private let io: any FileIO
    private let map: UnsafeRawBufferPointer
    private let codesCRC: UInt32, normsCRC: UInt32
    private let verified = Atomic<Bool>(false)

    package static func name(_ segmentID: UInt64) -> String { hex16(segmentID) + ".q8" }

    package var byteCount: Int { map.count }

    /// Encodes `count` rows and writes the file (temp, fsync, rename, fsync directory).
    package static func write(
        space: DistanceSpace, count: Int, segmentID: UInt64, io: any FileIO, path: String
    ) throws(SextantError) {
        let d = space.dimension
        let normalize = space.metric == .cosine
        // The scale: the 99.99th percentile of |x| over a sample, so rare outliers clip instead of
        // stretching every code.
        var sample: [Float] = []
        let step = max(1, count / 20_000)
        for row in stride(from: 0, to: count, by: step) {
            let v = space.vector(row)
            let f = normalize ? space.inverseNorms[row] : 1
            for j in 0..<d { sample.append(abs(v[j] * f)) }
        }
        sample.sort()
        let top = sample.isEmpty ? 1 : sample[min(sample.count - 1, Int(Double(sample.count) * 0.9999))]
        let scale = top > 0 ? top / 127 : 1

        var header = ByteWriter(capacity: 64)
        header.raw(magic)
        header.u32(version)
        header.u32(UInt32(d))
        header.u64(UInt64(count))
        header.u32(scale.bitPattern)
        header.u8(space.metric.code)
        header.zeros(3)
        header.u64(segmentID)
        header.zeros(60 - header.bytes.count)
        header.u32(CRC32C.checksum(header.bytes))

        var codes = [Int8](repeating: 0, count: count * d)
        var norms = [Float](repeating: 0, count: count)
        for row in 0..<count {
            let v = space.vector(row)
            let f = normalize ? space.inverseNorms[row] : 1
            var sq: Double = 0
            for j in 0..<d {
                let x = v[j]
                sq += Double(x) * Double(x)
                codes[row * d + j] = Int8(max(-127, min(127, (x * f / scale).rounded())))
            }
            norms[row] = Float(sq)
        }
        let codesCRC = codes.withUnsafeBytes { CRC32C.checksum($0) }
        let normsCRC = norms.withUnsafeBytes { CRC32C.checksum($0) }
        var footer = ByteWriter(capacity: 16)
        footer.u32(codesCRC)
        footer.u32(normsCRC)
        footer.raw(footerMagic)
        let pad = [UInt8](repeating: 0, count: (64 - (count * d) % 64) % 64)

        try io.createAtomically(path) { (fd, tmp) throws(SextantError) in
            for part in [header.bytes, codes.withUnsafeBytes { Array($0) }, pad, norms.withUnsafeBytes { Array($0) }, footer.bytes]
            where !part.isEmpty {
                try part.withBytes { (b) throws(SextantError) in try io.write(fd, b, path: tmp) }
            }
        }
    }

    /// Maps the file; checks header and sizes now, the two checksums before first use (``verify()``).
    package init(io: any FileIO, path: String, segmentID: UInt64, count: Int, dimension: Int) throws(SextantError) {
        self.io = io
        self.path = path
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = Int(try io.size(fd, path: path))
        let codeBytes = count * dimension
        let normsAt = 64 + codeBytes + (64 - codeBytes % 64) % 64
        guard size == normsAt + count * 4 + 16 else {
            throw SextantError(.corrupt, "\(path): quantized-vector file has \(size) bytes, expected \(normsAt + count * 4 + 16)")
        }
        let map = try io.mapReadOnly(fd, length: size, path: path)
        var ok = false
        defer { if !ok { io.unmap(map) } }
        guard Array(map[0..<8]) == Self.magic, Array(map[(size - 8)..<size]) == Self.footerMagic else {
            throw SextantError(.corrupt, "\(path): offset 0: not a Sextant quantized-vector file")
        }
        guard map.u32(at: 8) == Self.version else {
            throw SextantError(.unsupportedVersion, "\(path): quantized-vector format version \(map.u32(at: 8)) is not supported (this build reads version \(Self.version))")
        }
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: map[0..<60])) == map.u32(at: 60) else {
            throw SextantError(.corrupt, "\(path): offset 0: quantized-vector header checksum mismatch")
        }
        guard Int(map.u32(at: 12)) == dimension, Int(clamping: map.u64(at: 16)) == count, map.u64(at: 32) == segmentID else {
            throw SextantError(.corrupt, "\(path): header does not match segment \(segmentID)")
        }
        // Query encoding divides by the scale and converts to Int8: a crafted NaN, infinite, zero or negative
        // scale would trap there.
        let scale = Float(bitPattern: map.u32(at: 24))
        guard scale.isFinite, scale > 0 else {
            throw SextantError(.corrupt, "\(path): offset 24: quantization scale \(scale) is not a positive finite number")
        }
        self.count = count
        self.dimension = dimension
        self.scale = scale
        codes = (map.baseAddress! + 64).assumingMemoryBound(to: Int8.self)
        squaredNorms = (map.baseAddress! + normsAt).assumingMemoryBound(to: Float.self)
        codesCRC = map.u32(at: size - 16)
        normsCRC = map.u32(at: size - 12)
        self.map = map
        ok = true
    }

    deinit { io.unmap(map) }

    /// Checks both checksums (once).
    package func verify() throws(SextantError) {
        if verified.load(ordering: .acquiring) { return }
        guard CRC32C.checksum(UnsafeRawBufferPointer(start: codes, count: count * dimension)) == codesCRC else {
            throw SextantError(.corrupt, "\(path): offset 64: quantized codes checksum mismatch")
        }
        guard CRC32C.checksum(UnsafeRawBufferPointer(start: squaredNorms, count: count * 4)) == normsCRC else {
            throw SextantError(.corrupt, "\(path): quantized norms checksum mismatch")
        }
        verified.store(true, ordering: .releasing)
    }

    /// Codes for a query, with the same scale (cosine: of the normalized query).
    package func encode(_ q: UnsafePointer<Float>, inverseNorm: Float, metric: Metric, into out: UnsafeMutablePointer<Int8>) {
        let f = metric == .cosine ? inverseNorm : 1
        for j in 0..<dimension { out[j] = Int8(max(-127, min(127, (q[j] * f / scale).rounded()))) }
    }
}
