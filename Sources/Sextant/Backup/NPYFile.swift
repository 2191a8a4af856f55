// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A NumPy `.npy` file mapped read-only: a 2-D (or 1-D) C-order array of little-endian float32,
/// float16 or float64, converted to Float32 row by row.
///
/// Format (NumPy NEP 1): `\x93NUMPY` major:u8 minor:u8 headerLen:(u16 for 1.x, u32 for 2.x/3.x)
/// header (a Python dict literal: 'descr', 'fortran_order', 'shape'), then the raw data.
public final class NPYFile: @unchecked Sendable {  // immutable after init
    public enum ElementType: String, Sendable { case float32 = "<f4", float16 = "<f2", float64 = "<f8" }
    public let path: String
    public let rows: Int
    public let columns: Int
    public let elementType: ElementType
    private let map: UnsafeRawBufferPointer
    private let dataOffset: Int
    private let io: any FileIO

    public convenience init(path: String) throws(SextantError) {
        try self.init(path: path, io: PosixFileIO())
    }

    package init(path: String, io: any FileIO) throws(SextantError) {
        self.path = path
        self.io = io
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = Int(try io.size(fd, path: path))
        let map = try io.mapReadOnly(fd, length: size, path: path)
        var ok = false
        defer { if !ok { io.unmap(map) } }
        let header = try NPYHeader.parse(map, path: path)
        elementType = header.elementType
        rows = header.rows
        columns = header.columns
        dataOffset = header.dataOffset
        let type = header.elementType
        let elementSize = type == .float32 ? 4 : type == .float16 ? 2 : 8
        // The shape comes from the file: its product is computed without trapping on overflow.
        let (cells, o1) = rows.multipliedReportingOverflow(by: columns)
        let (needed, o2) = cells.multipliedReportingOverflow(by: elementSize)
        guard !o1, !o2, dataOffset <= size, needed <= size - dataOffset else {
            throw SextantError(
                .parse, "\(path): the file holds \(max(0, size - dataOffset)) data bytes; shape (\(rows), \(columns)) needs \(o1 || o2 ? "more than \(Int.max)" : "\(needed)")")
        }
        self.map = map
        ok = true
    }

    deinit { io.unmap(map) }

    /// Tells the kernel the rows before `row` will not be read again, so a sequential import of a file
    /// larger than memory does not keep it all resident (mapped file pages count toward RSS).
    public func releaseRows(before row: Int) {
        let elementSize = elementType == .float32 ? 4 : elementType == .float16 ? 2 : 8
        let end = dataOffset + row * columns * elementSize
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = end / page * page
        guard length > 0, let base = map.baseAddress else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), length, MADV_DONTNEED)
    }

    /// Row `i` as Float32 (converted from float16/float64 when needed).
    public func row(_ i: Int) -> [Float] {
        let base = map.baseAddress! + dataOffset
        switch elementType {
        case .float32:
            return Array(UnsafeBufferPointer(start: (base + i * columns * 4).assumingMemoryBound(to: Float.self), count: columns))
        case .float64:
            return (0..<columns).map { Float(base.loadUnaligned(fromByteOffset: (i * columns + $0) * 8, as: Double.self)) }
        case .float16:
            return (0..<columns).map { Float(float16Bits: base.loadUnaligned(fromByteOffset: (i * columns + $0) * 2, as: UInt16.self)) }
        }
    }
}

/// The header of a `.npy` file: element type, shape and where the data starts.
package struct NPYHeader {
    package var elementType: NPYFile.ElementType
    package var rows: Int
    package var columns: Int
    package var dataOffset: Int
    package var elementSize: Int { elementType == .float32 ? 4 : elementType == .float16 ? 2 : 8 }

    /// The longest header read (NumPy's own reader stops at 10,000 bytes): a crafted length must not make a
    /// streaming restore allocate gigabytes before the header is even parsed.
    package static let maxHeaderBytes = 1 << 20

    /// Refuses a header longer than ``maxHeaderBytes``.
    static func checkLength(_ length: Int, path: String) throws(SextantError) {
        guard length <= maxHeaderBytes else {
            throw SextantError(.parse, "\(path): the .npy header is \(length) bytes long (at most \(maxHeaderBytes) are read)")
        }
    }

    /// The bytes the header occupies, from the first 12 bytes of the file (nil: too short to tell).
    static func length(_ prefix: UnsafeRawBufferPointer) -> Int? {
        guard prefix.count >= 10 else { return nil }
        switch prefix[6] {
        case 1: return 10 + (Int(prefix[8]) | Int(prefix[9]) << 8)
        case 2, 3: return prefix.count >= 12 ? 12 + Int(prefix.u32(at: 8)) : nil
        default: return 10
        }
    }

    /// Parses the header at the start of `bytes` (which holds at least the whole header).
    package static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws(SextantError) -> NPYHeader {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        let size = bytes.count
        guard size >= 10, Array(bytes[0..<6]) == magic else {
            throw SextantError(.parse, "\(path): not a NumPy .npy file (bad magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard size >= 12 else { throw SextantError(.parse, "\(path): truncated .npy header") }
            headerLength = Int(bytes.u32(at: 8))
            headerStart = 12
        default:
            throw SextantError(.unsupportedVersion, "\(path): .npy format version \(major) is not supported (this build reads versions 1 to 3)")
        }
        try checkLength(headerStart + headerLength, path: path)
        guard headerStart + headerLength <= size else { throw SextantError(.parse, "\(path): truncated .npy header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        func field(_ name: String) -> Substring? {
            guard let r = header.range(of: "'\(name)':") else { return nil }
            return header[r.upperBound...].drop { $0 == " " }
        }
        guard let descrField = field("descr"), let q = descrField.dropFirst().firstIndex(of: "'") else {
            throw SextantError(.parse, "\(path): .npy header has no 'descr'")
        }
        let descr = String(descrField.dropFirst()[..<q])
        guard let type = NPYFile.ElementType(rawValue: descr.replacingOccurrences(of: "=", with: "<")) else {
            throw SextantError(.parse, "\(path): element type \(descr) is not supported (use little-endian float32, float16 or float64)")
        }
        if let fortran = field("fortran_order"), fortran.hasPrefix("True") {
            throw SextantError(.parse, "\(path): Fortran-order arrays are not supported; save with np.ascontiguousarray")
        }
        guard let shapeField = field("shape"), shapeField.first == "(", let close = shapeField.firstIndex(of: ")") else {
            throw SextantError(.parse, "\(path): .npy header has no 'shape'")
        }
        let dims = shapeField.dropFirst()[..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let shape = dims.compactMap { Int($0) }
        guard shape.count == dims.count, (1...2).contains(shape.count) else {
            throw SextantError(.parse, "\(path): expected a 1-D or 2-D array, the shape is (\(dims.joined(separator: ", ")))")
        }
        // A crafted shape must not make the size check itself trap, nor pass it with a negative count.
        let text = "(\(dims.joined(separator: ", ")))"
        guard shape.allSatisfy({ $0 >= 0 }) else { throw SextantError(.parse, "\(path): the shape \(text) has a negative dimension") }
        let elementSize = type == .float32 ? 4 : type == .float16 ? 2 : 8
        let (elements, o1) = shape[0].multipliedReportingOverflow(by: shape.count == 2 ? shape[1] : 1)
        let (bytes, o2) = elements.multipliedReportingOverflow(by: elementSize)
        guard !o1, !o2, !bytes.addingReportingOverflow(headerStart + headerLength).overflow else {
            throw SextantError(.parse, "\(path): the shape \(text) is too large")
        }
        return NPYHeader(elementType: type, rows: shape[0], columns: shape.count == 2 ? shape[1] : 1, dataOffset: headerStart + headerLength)
    }

    /// Converts `count` rows of `columns` elements at `source` to Float32 into `out`.
    package func convert(_ source: UnsafeRawPointer, rows count: Int, into out: UnsafeMutablePointer<Float>) {
        let n = count * columns
        switch elementType {
        case .float32:
            UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: n * 4)
        case .float64:
            for i in 0..<n { out[i] = Float(source.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
        case .float16:
            for i in 0..<n { out[i] = Float(float16Bits: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
        }
    }
}

extension Float {
    /// Converts IEEE-754 binary16 bits (portable: Float16 is unavailable on some platforms).
    init(float16Bits h: UInt16) {
        let sign = UInt32(h >> 15) << 31
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            let v = Float(mant) * 0x1p-24
            self = sign != 0 ? -v : v
        } else if exp == 31 {
            self = Float(bitPattern: sign | 0x7F80_0000 | (mant << 13))
        } else {
            self = Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
        }
    }
}
