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

    /// Parses command-line style text (CLI arguments, the lines of an ids file): all ASCII digits → `.int`,
    /// anything else → `.string`.
    ///
    /// All digits always means an integer id, so digits beyond `UInt64.max` (18446744073709551615) are an
    /// error rather than a string id, exactly as a JSON Lines `"id": 18446744073709551616` is. To have
    /// such text as a string id, make it one yourself (`.string(text)`; the CLI's `s:` prefix or
    /// `--string-id`).
    /// - Throws: ``SextantError/Code/invalidArgument`` for digits that do not fit in a `UInt64`.
    public init(parsing text: String) throws(SextantError) {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            self = .string(text)
            return
        }
        guard let v = UInt64(text) else {
            throw SextantError(
                .invalidArgument,
                "id \(SextantError.quoted(text)) is all digits, so an integer id, but larger than \(UInt64.max), the largest integer id"
                    + " (digits are a string id only when given as one)")
        }
        self = .int(v)
    }

    /// Parses a scroll continuation token, as ``continuationToken`` writes it: `i:N` (after integer id N)
    /// or `s:TEXT` (after string id TEXT).
    /// - Throws: ``SextantError/Code/invalidArgument`` for anything else, saying what a token looks like.
    public init(continuationToken token: String) throws(SextantError) {
        let what = "is not a continuation token; a token is i:N (after integer id N) or s:TEXT (after string id TEXT), as a page's {\"next\": …} line gives it"
        if token.hasPrefix("i:") {
            let digits = token.dropFirst(2)
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = UInt64(digits) else {
                throw SextantError(.invalidArgument, "\(SextantError.quoted(token)) \(what) (N: digits, at most \(UInt64.max))")
            }
            self = .int(v)
        } else if token.hasPrefix("s:") {
            let text = String(token.dropFirst(2))
            guard !text.isEmpty, text.utf8.count <= Self.maxStringBytes else {
                throw SextantError(.invalidArgument, "\(SextantError.quoted(token)) \(what) (TEXT: 1 to \(Self.maxStringBytes) UTF-8 bytes)")
            }
            self = .string(text)
        } else {
            throw SextantError(.invalidArgument, "\(SextantError.quoted(token)) \(what)")
        }
    }

    /// The scroll continuation token of this id: `i:N` or `s:TEXT`.
    public var continuationToken: String {
        switch self {
        case .int(let v): return "i:\(v)"
        case .string(let s): return "s:" + s
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

extension RecordID {
    /// The id as error messages show it: an integer as digits, a string through ``SextantError/quoted(_:limit:)``.
    package var quotedForMessages: String {
        switch self {
        case .int(let v): return String(v)
        case .string(let s): return SextantError.quoted(s)
        }
    }
}
