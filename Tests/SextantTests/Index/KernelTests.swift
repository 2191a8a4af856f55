// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// Tests of the C kernels (CSextantKernels), called directly rather than through the Swift wrappers so a
// failure points at the kernel itself.
//
// Every kernel table the CPU can run is checked against a double-precision reference written here, over
// dimensions that hit every code path: all d in 1...70 (masked tails of every length, 0-3 leftover whole
// vectors, the 4-vector loop, the interleaved short-row batches) and the usual embedding sizes with
// ±1 neighbours. Pointers are deliberately misaligned and batches use stride > d, because callers pass
// rows out of memory-mapped pages. The data generator is a local SplitMix64 so the test depends on
// nothing else and every failure reproduces.

import CSextantKernels
import SextantTestSupport
import Testing

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for test data.
private typealias SplitMix64 = RepeatableRandomNumberGenerator

extension RepeatableRandomNumberGenerator {
    mutating func nextFloat() -> Float { Float(next() >> 40) * 0x1p-23 - 1 }
    mutating func nextByte() -> UInt8 { UInt8(truncatingIfNeeded: next() >> 56) }
}

/// A 64-byte-aligned float buffer; `pointer(offset:)` hands out deliberately misaligned views.
private final class FloatBuffer {
    let count: Int
    let raw: UnsafeMutableRawPointer

    init(count: Int, rng: inout SplitMix64) {
        self.count = count
        raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        let p = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        for i in 0..<count { p[i] = rng.nextFloat() }
    }

    deinit { raw.deallocate() }

    func pointer(offset: Int) -> UnsafeMutablePointer<Float> {
        raw.assumingMemoryBound(to: Float.self) + offset
    }
}

private enum Metric: CaseIterable, CustomStringConvertible {
    case dot, l2sq, l1

    var description: String {
        switch self {
        case .dot: "dot"
        case .l2sq: "l2sq"
        case .l1: "l1"
        }
    }

    /// The exact value (in double) and the sum of |terms|, which scales the allowed float rounding error.
    func reference(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> (value: Double, scale: Double) {
        var sum = 0.0
        var scale = 0.0
        for i in 0..<d {
            let x = Double(a[i]), y = Double(b[i])
            let term: Double
            switch self {
            case .dot: term = x * y
            case .l2sq: term = (x - y) * (x - y)
            case .l1: term = abs(x - y)
            }
            sum += term
            scale += abs(term)
        }
        return (sum, scale)
    }

    func single(_ k: sx_kernels, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float {
        switch self {
        case .dot: k.dot(a, b, d)
        case .l2sq: k.l2sq(a, b, d)
        case .l1: k.l1(a, b, d)
        }
    }

    func batch(
        _ k: sx_kernels, _ q: UnsafePointer<Float>, _ base: UnsafePointer<Float>, n: Int, d: Int, stride: Int,
        _ out: UnsafeMutablePointer<Float>
    ) {
        switch self {
        case .dot: k.dot_batch(q, base, n, d, stride, out)
        case .l2sq: k.l2sq_batch(q, base, n, d, stride, out)
        case .l1: k.l1_batch(q, base, n, d, stride, out)
        }
    }
}

private let relativeTolerance = 1e-4

private func withinTolerance(_ got: Float, _ ref: (value: Double, scale: Double)) -> Bool {
    abs(Double(got) - ref.value) <= relativeTolerance * ref.scale + 1e-30
}

/// The ISAs this CPU can run (scalar always; AVX2/AVX-512 on x86-64 CPUs that have them).
private let supportedISAs: [Int32] = [SX_ISA_SCALAR, SX_ISA_AVX2, SX_ISA_AVX512].map { Int32($0) }.filter {
    sx_kernels_for($0) != nil
}

private func kernels(_ isa: Int32) -> sx_kernels { sx_kernels_for(isa)!.pointee }

private let testDimensions: [Int] = Array(1...70) + [127, 128, 129, 383, 384, 385, 768, 1536]

/// Table-driven bytewise CRC-32C, independent of the C code.
private let crcTable: [UInt32] = (0..<256).map { (i: Int) -> UInt32 in
    var c = UInt32(i)
    for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    return c
}

private func referenceCRC32C(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var c = ~crc
    for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    return ~c
}

@Suite struct KernelTests {
    // MARK: - Dispatch

    @Test func scalarAlwaysAvailableAndBestIsHighestSupported() throws {
        let scalar = try #require(sx_kernels_for(Int32(SX_ISA_SCALAR)))
        #expect(String(cString: scalar.pointee.name) == "scalar")
        #expect(sx_kernels_for(-1) == nil)
        #expect(sx_kernels_for(99) == nil)
        let best = try #require(sx_kernels_best())
        let highest = try #require(supportedISAs.max())
        #expect(best == sx_kernels_for(highest))
        #expect(sx_kernels_best() == best)  // chosen once, stable
        let expectedNames: [Int32: String] = [0: "scalar", 1: "avx2", 2: "avx512"]
        for isa in supportedISAs {
            #expect(String(cString: kernels(isa).name) == expectedNames[isa])
        }
    }

    // MARK: - Distances against the double reference

    @Test(arguments: supportedISAs)
    func singleKernelsMatchReference(isa: Int32) {
        let k = kernels(isa)
        var rng = SplitMix64(seed: 0x5EC7_A000 + UInt64(isa))
        for d in testDimensions {
            // a and b both misaligned (by 1 and 3 floats) relative to the 64-byte-aligned allocation.
            let bufA = FloatBuffer(count: d + 1, rng: &rng)
            let bufB = FloatBuffer(count: d + 3, rng: &rng)
            let a = UnsafePointer(bufA.pointer(offset: 1))
            let b = UnsafePointer(bufB.pointer(offset: 3))
            for metric in Metric.allCases {
                let got = metric.single(k, a, b, d)
                let ref = metric.reference(a, b, d)
                #expect(withinTolerance(got, ref), "\(metric) isa=\(isa) d=\(d): got \(got), want \(ref.value)")
                // The header promises symmetry bit for bit.
                #expect(metric.single(k, b, a, d) == got, "\(metric) isa=\(isa) d=\(d) not symmetric")
            }
        }
    }

    @Test(arguments: supportedISAs)
    func batchKernelsMatchReferenceAndSingle(isa: Int32) {
        let k = kernels(isa)
        var rng = SplitMix64(seed: 0xBA7C_4000 + UInt64(isa))
        let n = 11  // not a multiple of the 4- or 2-row blocks, so remainders are exercised
        for d in testDimensions {
            for extra in [3, 16] {  // stride > d: odd (rows misaligned) and a whole vector of padding
                let stride = d + extra
                let bufQ = FloatBuffer(count: d + 5, rng: &rng)
                let bufX = FloatBuffer(count: n * stride + 1, rng: &rng)
                let q = UnsafePointer(bufQ.pointer(offset: 5))
                let base = UnsafePointer(bufX.pointer(offset: 1))
                var out = [Float](repeating: .nan, count: n + 1)
                for metric in Metric.allCases {
                    out[n] = 12345  // sentinel: nothing past out[n-1] may be written
                    out.withUnsafeMutableBufferPointer { metric.batch(k, q, base, n: n, d: d, stride: stride, $0.baseAddress!) }
                    #expect(out[n] == 12345, "\(metric) isa=\(isa) d=\(d): wrote past n")
                    for i in 0..<n {
                        let row = base + i * stride
                        let ref = metric.reference(q, row, d)
                        #expect(
                            withinTolerance(out[i], ref),
                            "\(metric) batch isa=\(isa) d=\(d) stride=\(stride) row \(i): got \(out[i]), want \(ref.value)")
                        // Contract: a batch result is bit-identical to the single-vector call.
                        let single = metric.single(k, q, row, d)
                        #expect(
                            out[i].bitPattern == single.bitPattern,
                            "\(metric) isa=\(isa) d=\(d) row \(i): batch \(out[i]) != single \(single)")
                    }
                }
            }
        }
    }

    @Test(arguments: supportedISAs)
    func batchHandlesEveryRowCount(isa: Int32) {
        let k = kernels(isa)
        var rng = SplitMix64(seed: 0xC0A7 + UInt64(isa))
        for d in [1, 7, 16, 64, 65, 200] {
            let stride = d + 1
            let maxN = 13
            let bufQ = FloatBuffer(count: d, rng: &rng)
            let bufX = FloatBuffer(count: maxN * stride, rng: &rng)
            let q = UnsafePointer(bufQ.pointer(offset: 0))
            let base = UnsafePointer(bufX.pointer(offset: 0))
            for n in 0...maxN {
                for metric in Metric.allCases {
                    var out = [Float](repeating: -7, count: maxN + 1)
                    out.withUnsafeMutableBufferPointer { metric.batch(k, q, base, n: n, d: d, stride: stride, $0.baseAddress!) }
                    for i in 0..<n {
                        #expect(out[i] == metric.single(k, q, base + i * stride, d), "\(metric) isa=\(isa) d=\(d) n=\(n) i=\(i)")
                    }
                    #expect(out[n...].allSatisfy { $0 == -7 }, "\(metric) isa=\(isa) d=\(d) n=\(n): wrote past n")
                }
            }
        }
    }

    @Test(arguments: supportedISAs)
    func zeroDimensionAndEmptyBatch(isa: Int32) {
        let k = kernels(isa)
        let a: [Float] = [1]
        let b: [Float] = [2]
        for metric in Metric.allCases {
            #expect(metric.single(k, a, b, 0) == 0)
            var out: [Float] = [9, 9, 9]
            out.withUnsafeMutableBufferPointer { metric.batch(k, a, b, n: 2, d: 0, stride: 0, $0.baseAddress!) }
            #expect(out == [0, 0, 9])
            out.withUnsafeMutableBufferPointer { metric.batch(k, a, b, n: 0, d: 1, stride: 1, $0.baseAddress!) }
            #expect(out == [0, 0, 9])
        }
    }

    @Test(arguments: supportedISAs)
    func knownValues(isa: Int32) {
        let k = kernels(isa)
        let a: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
        let b: [Float] = a.map { 2 * $0 - 1 }
        // Small integers: every metric is exact in float, whatever the summation order.
        let dot = a.indices.reduce(Float(0)) { $0 + a[$1] * b[$1] }
        let l2 = a.indices.reduce(Float(0)) { $0 + (a[$1] - b[$1]) * (a[$1] - b[$1]) }
        let l1 = a.indices.reduce(Float(0)) { $0 + abs(a[$1] - b[$1]) }
        #expect(k.dot(a, b, a.count) == dot)
        #expect(k.l2sq(a, b, a.count) == l2)
        #expect(k.l1(a, b, a.count) == l1)
        #expect(k.l2sq(a, a, a.count) == 0)
    }

    // MARK: - CRC-32C

    @Test func crc32cKnownVectors() {
        let check = Array("123456789".utf8)
        let zeros = [UInt8](repeating: 0, count: 32)
        let ones = [UInt8](repeating: 0xFF, count: 32)
        let inc = (0..<32).map { UInt8($0) }  // RFC 3720 B.4
        let dec = (0..<32).reversed().map { UInt8($0) }
        let vectors: [([UInt8], UInt32)] = [
            (check, 0xE306_9283), (zeros, 0x8A91_36AA), (ones, 0x62A8_AB43), (inc, 0x46DD_794E), (dec, 0x113F_DB5C),
        ]
        for (bytes, want) in vectors {
            #expect(sx_crc32c(0, bytes, bytes.count) == want)
            #expect(sx_crc32c_sw(0, bytes, bytes.count) == want)
            #expect(bytes.withUnsafeBytes { referenceCRC32C(0, $0) } == want)
        }
        // Empty input leaves the CRC unchanged, and a NULL pointer is allowed for it.
        #expect(sx_crc32c(0, nil, 0) == 0)
        #expect(sx_crc32c(0xDEAD_BEEF, nil, 0) == 0xDEAD_BEEF)
        #expect(sx_crc32c_sw(0xDEAD_BEEF, nil, 0) == 0xDEAD_BEEF)
    }

    @Test func crc32cHardwareMatchesSoftwareShortLengths() {
        var rng = SplitMix64(seed: 0xC4C3_2C00)
        let buffer = (0..<(300 + 8)).map { _ in rng.nextByte() }
        buffer.withUnsafeBytes { all in
            for misalign in 0..<8 {
                for len in 0...300 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[misalign..<(misalign + len)])
                    let sw = sx_crc32c_sw(0, slice.baseAddress, len)
                    #expect(sx_crc32c(0, slice.baseAddress, len) == sw, "len=\(len) misalign=\(misalign)")
                    #expect(referenceCRC32C(0, slice) == sw, "len=\(len) misalign=\(misalign)")
                }
            }
        }
    }

    @Test func crc32cHardwareMatchesSoftwareLongBuffers() {
        var rng = SplitMix64(seed: 0xC4C3_2C01)
        let mib = 1 << 20
        let buffer = (0..<(mib + 8)).map { _ in rng.nextByte() }
        // Lengths straddling the 3-way block sizes of the hardware path (3*256 and 3*8192 bytes).
        let lengths = [767, 768, 769, 1536 + 5, 24575, 24576, 24577, 24576 + 768 + 7, 3 * 24576 + 1000, mib - 8, mib]
        buffer.withUnsafeBytes { all in
            for misalign in [0, 1, 3, 4, 7] {
                for len in lengths {
                    let slice = UnsafeRawBufferPointer(rebasing: all[misalign..<(misalign + len)])
                    let sw = sx_crc32c_sw(0, slice.baseAddress, len)
                    #expect(sx_crc32c(0, slice.baseAddress, len) == sw, "len=\(len) misalign=\(misalign)")
                }
            }
            let slice = UnsafeRawBufferPointer(rebasing: all[3..<(3 + 65536)])
            #expect(referenceCRC32C(0, slice) == sx_crc32c_sw(0, slice.baseAddress, slice.count))
        }
    }

    @Test func crc32cChains() {
        var rng = SplitMix64(seed: 0xC4C3_2C02)
        let total = 100_000
        let buffer = (0..<total).map { _ in rng.nextByte() }
        buffer.withUnsafeBytes { all in
            let whole = sx_crc32c(0, all.baseAddress, total)
            #expect(whole == sx_crc32c_sw(0, all.baseAddress, total))
            var splits = [0, 1, 7, 8, 767, 768, 24576, total - 1, total]
            for _ in 0..<20 { splits.append(Int(rng.next() % UInt64(total + 1))) }
            for split in splits {
                let head = all.baseAddress!, tail = all.baseAddress! + split
                let hw = sx_crc32c(sx_crc32c(0, head, split), tail, total - split)
                let sw = sx_crc32c_sw(sx_crc32c_sw(0, head, split), tail, total - split)
                let mixed = sx_crc32c(sx_crc32c_sw(0, head, split), tail, total - split)
                #expect(hw == whole, "split=\(split)")
                #expect(sw == whole, "split=\(split)")
                #expect(mixed == whole, "split=\(split)")
            }
            // Many small pieces.
            var crc: UInt32 = 0
            var offset = 0
            while offset < total {
                let len = min(Int(rng.next() % 97), total - offset)
                crc = sx_crc32c(crc, all.baseAddress! + offset, len)
                offset += len
            }
            #expect(crc == whole)
        }
    }
}

@Suite struct GatherKernelTests {
    /// The gathers (used by graph traversal) must equal the best single-row kernel bit for bit, for any
    /// number of ids (the AVX-512 path takes four at a time) and any dimension.
    @Test(arguments: [1, 3, 16, 17, 64, 100, 384, 385])
    func gatherEqualsSingleRowKernels(dimension d: Int) {
        var rng = RepeatableRandomNumberGenerator(seed: UInt64(d))
        let n = 300
        let base = (0..<(n * d)).map { _ in Float(Int(rng.next() % 2001) - 1000) / 997 }
        let q = (0..<d).map { _ in Float(Int(rng.next() % 2001) - 1000) / 991 }
        let k = sx_kernels_best()!.pointee
        for count in [0, 1, 3, 4, 5, 8, 31, 32] {
            let ids = (0..<count).map { _ in UInt32(rng.next() % UInt64(n)) }
            var outs = [[Float]](repeating: [Float](repeating: 0, count: max(1, count)), count: 3)
            base.withUnsafeBufferPointer { b in
                q.withUnsafeBufferPointer { qb in
                    sx_dot_gather(qb.baseAddress, b.baseAddress, ids, count, d, &outs[0])
                    sx_l2sq_gather(qb.baseAddress, b.baseAddress, ids, count, d, &outs[1])
                    sx_l1_gather(qb.baseAddress, b.baseAddress, ids, count, d, &outs[2])
                    for (i, id) in ids.enumerated() {
                        let row = b.baseAddress! + Int(id) * d
                        #expect(outs[0][i].bitPattern == k.dot(qb.baseAddress, row, d).bitPattern)
                        #expect(outs[1][i].bitPattern == k.l2sq(qb.baseAddress, row, d).bitPattern)
                        #expect(outs[2][i].bitPattern == k.l1(qb.baseAddress, row, d).bitPattern)
                    }
                }
            }
        }
    }
}

@Suite struct Int8KernelTests {
    @Test(arguments: [1, 7, 31, 32, 33, 64, 100, 384, 768])
    func int8GatherEqualsTheScalarReference(dimension d: Int) {
        var rng = RepeatableRandomNumberGenerator(seed: UInt64(d) &* 31)
        let n = 200
        // Include the extremes: -127…127 products must not overflow.
        let base: [Int8] = (0..<(n * d)).map { i in i % 17 == 0 ? -127 : Int8(Int(rng.next() % 255) - 127) }
        let q: [Int8] = (0..<d).map { j in j % 5 == 0 ? 127 : Int8(Int(rng.next() % 255) - 127) }
        for count in [0, 1, 2, 3, 9, 32] {
            let ids = (0..<count).map { _ in UInt32(rng.next() % UInt64(n)) }
            var fast = [Int32](repeating: 0, count: max(1, count))
            var reference = [Int32](repeating: 0, count: max(1, count))
            sx_i8_dot_gather(q, base, ids, count, d, &fast)
            sx_i8_dot_gather_scalar(q, base, ids, count, d, &reference)
            #expect(fast == reference)
            for (i, id) in ids.enumerated() {
                let expected = (0..<d).reduce(Int32(0)) { $0 + Int32(q[$1]) * Int32(base[Int(id) * d + $1]) }
                #expect(reference[i] == expected)
            }
        }
    }
}
