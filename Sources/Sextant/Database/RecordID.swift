// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// A record's identity: an unsigned 64-bit integer or a string. One id space per collection, so
/// `.int(7)` and `.string("7")` are different records.
///
/// Ids order integers first (numerically), then strings (by UTF-8 bytes); ``Collection/scroll(after:limit:)`` uses that order.
public enum RecordID: Hashable, Sendable, Comparable, CustomStringConvertible {
    case int(UInt64)
    case string(String)

    /// The longest string id accepted, in UTF-8 bytes.
    public static let maxStringBytes = 1024

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .string(let s): return s
        }
    }

    /// Parses command-line style text: all digits (fitting in UInt64) → `.int`, anything else → `.string`.
    public init(parsing text: String) {
        if let v = UInt64(text), !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            self = .int(v)
        } else {
            self = .string(text)
        }
    }

    public static func < (lhs: RecordID, rhs: RecordID) -> Bool {
        switch (lhs, rhs) {
        case (.int(let a), .int(let b)): return a < b
        case (.int, .string): return true
        case (.string, .int): return false
        case (.string(let a), .string(let b)): return a.utf8.lexicographicallyPrecedes(b.utf8)
        }
    }

    /// The binary key stored in WAL records and segments: `0x00` + big-endian UInt64, or `0x01` + UTF-8.
    /// Byte-wise comparison of keys gives the same order as `<`.
    package var key: [UInt8] {
        switch self {
        case .int(let v):
            var out = [UInt8](repeating: 0, count: 9)
            var be = v.bigEndian
            withUnsafeBytes(of: &be) { for i in 0..<8 { out[i + 1] = $0[i] } }
            return out
        case .string(let s):
            var out: [UInt8] = [1]
            out.append(contentsOf: s.utf8)
            return out
        }
    }

    /// Decodes a key written by ``key``. Returns nil for bytes that are not a valid key.
    package init?(key: UnsafeRawBufferPointer) {
        guard let tag = key.first else { return nil }
        if tag == 0, key.count == 9 {
            var v: UInt64 = 0
            for i in 1..<9 { v = (v << 8) | UInt64(key[i]) }
            self = .int(v)
        } else if tag == 1 {
            guard let s = String(validating: UnsafeRawBufferPointer(rebasing: key[1...]), as: UTF8.self) else { return nil }
            self = .string(s)
        } else {
            return nil
        }
    }
}
