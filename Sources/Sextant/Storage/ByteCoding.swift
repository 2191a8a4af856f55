// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// Appends little-endian fixed-width integers and raw bytes to a growing buffer.
///
/// All Sextant files are little-endian; Float32 vectors are stored as their IEEE-754 bit patterns.
package struct ByteWriter {
    package var bytes: [UInt8]

    package init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always) package mutating func u8(_ v: UInt8) { bytes.append(v) }
    @inline(__always) package mutating func u16(_ v: UInt16) { append(v.littleEndian) }
    @inline(__always) package mutating func u32(_ v: UInt32) { append(v.littleEndian) }
    @inline(__always) package mutating func u64(_ v: UInt64) { append(v.littleEndian) }

    @inline(__always) private mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
    }

    package mutating func raw(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    package mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    package mutating func floats(_ v: [Float]) { v.withUnsafeBytes { bytes.append(contentsOf: $0) } }
    package mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
    /// Pads with zeros to a multiple of `alignment`.
    package mutating func align(_ alignment: Int) {
        let r = bytes.count % alignment
        if r != 0 { zeros(alignment - r) }
    }
}

/// Reads little-endian values from a byte range with bounds checks: running past the end is
/// reported as corruption (naming `what` and the offset), never a crash.
package struct ByteReader {
    package let buffer: UnsafeRawBufferPointer
    package var offset: Int
    package let what: String

    package init(_ buffer: UnsafeRawBufferPointer, what: String, offset: Int = 0) {
        self.buffer = buffer
        self.what = what
        self.offset = offset
    }

    package var remaining: Int { buffer.count - offset }

    @inline(__always) private mutating func need(_ n: Int) throws(SextantError) {
        if n < 0 || offset + n > buffer.count {
            throw SextantError(.corrupt, "\(what): truncated at offset \(offset) (needed \(n) more bytes)")
        }
    }

    @inline(__always) package mutating func u8() throws(SextantError) -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return buffer[offset]
    }
    @inline(__always) package mutating func u16() throws(SextantError) -> UInt16 { UInt16(littleEndian: try load()) }
    @inline(__always) package mutating func u32() throws(SextantError) -> UInt32 { UInt32(littleEndian: try load()) }
    @inline(__always) package mutating func u64() throws(SextantError) -> UInt64 { UInt64(littleEndian: try load()) }

    @inline(__always) private mutating func load<T: FixedWidthInteger>() throws(SextantError) -> T {
        try need(MemoryLayout<T>.size)
        defer { offset += MemoryLayout<T>.size }
        return buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    package mutating func bytes(_ n: Int) throws(SextantError) -> UnsafeRawBufferPointer {
        try need(n)
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + n])
    }

    package mutating func floats(_ n: Int) throws(SextantError) -> [Float] {
        let raw = try bytes(n * 4)
        return [Float](unsafeUninitializedCapacity: n) { out, count in
            UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
            count = n
        }
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) package func u32(at o: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
    @inline(__always) package func u64(at o: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
}

extension Array {
    /// `withUnsafeBytes` for bodies with typed throws (the standard library's version is `rethrows`,
    /// which erases the error type).
    @inline(__always)
    package func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(SextantError) -> R) throws(SextantError) -> R {
        let result: Result<R, SextantError> = withUnsafeBytes { b in Result { () throws(SextantError) in try body(b) } }
        return try result.get()
    }
}

/// `withUnsafeBytes(of:)` for bodies with typed throws.
@inline(__always)
package func withBytes<T, R>(of value: T, _ body: (UnsafeRawBufferPointer) throws(SextantError) -> R) throws(SextantError) -> R {
    let result: Result<R, SextantError> = withUnsafeBytes(of: value) { b in Result { () throws(SextantError) in try body(b) } }
    return try result.get()
}
