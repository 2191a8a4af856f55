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
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard size >= 10, Array(map[0..<6]) == magic else {
            throw SextantError(.parse, "\(path): not a NumPy .npy file (bad magic)")
        }
        let major = map[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(map[8]) | Int(map[9]) << 8
            headerStart = 10
        case 2, 3:
            guard size >= 12 else { throw SextantError(.parse, "\(path): truncated .npy header") }
            headerLength = Int(map.u32(at: 8))
            headerStart = 12
        default:
            throw SextantError(.unsupportedVersion, "\(path): .npy format version \(major) is not supported")
        }
        guard headerStart + headerLength <= size else { throw SextantError(.parse, "\(path): truncated .npy header") }
        let header = String(decoding: map[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        func field(_ name: String) -> Substring? {
            guard let r = header.range(of: "'\(name)':") else { return nil }
            return header[r.upperBound...].drop { $0 == " " }
        }
        guard let descrField = field("descr"), let q = descrField.dropFirst().firstIndex(of: "'") else {
            throw SextantError(.parse, "\(path): .npy header has no 'descr'")
        }
        let descr = String(descrField.dropFirst()[..<q])
        guard let type = ElementType(rawValue: descr.replacingOccurrences(of: "=", with: "<")) else {
            throw SextantError(.parse, "\(path): element type \(descr) is not supported (use little-endian float32, float16 or float64)")
        }
        elementType = type
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
        rows = shape[0]
        columns = shape.count == 2 ? shape[1] : 1
        dataOffset = headerStart + headerLength
        let elementSize = type == .float32 ? 4 : type == .float16 ? 2 : 8
        guard dataOffset + rows * columns * elementSize <= size else {
            throw SextantError(.parse, "\(path): the file holds \(size - dataOffset) data bytes; shape (\(rows), \(columns)) needs \(rows * columns * elementSize)")
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
