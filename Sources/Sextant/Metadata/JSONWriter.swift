// Sextant — an embedded vector database. Licensed under Apache-2.0.

import OrderedCollections

/// Writes compact JSON (no spaces, no newlines) as UTF-8 bytes.
///
/// - Strings: `"` and `\` are escaped, and control characters below U+0020 (`\b \f \n \r \t`, others as `\u00XX`);
///   everything else, non-ASCII included, is written as its UTF-8 bytes.
/// - `.int` is written as a plain integer; `.double` in the shortest form that reads back as the same `Double`,
///   always with a `.` or an exponent (`3.0`, `1e+16`, `-0.0`), so that ``JSONParser`` reads it back as a `.double`.
/// - A non-finite `.double` (NaN, ±infinity, which ``JSONParser`` never produces but a program can construct)
///   has no JSON form and is written as `null`.
///
/// So `JSONParser.parse(write(v)) == v` for every `v` without non-finite doubles, down to the sign of `-0.0`.
public enum JSONWriter {
    /// Appends the compact JSON text of `value` to `out`. Never fails; see ``JSONWriter`` for non-finite doubles.
    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null:
            appendASCII("null", to: &out)
        case .bool(let b):
            appendASCII(b ? "true" : "false", to: &out)
        case .int(let v):
            writeInteger(v, into: &out)
        case .double(let v):
            writeDouble(v, into: &out)
        case .string(let s):
            writeString(s, into: &out)
        case .array(let elements):
            out.append(ASCII.openBracket)
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(ASCII.comma) }
                write(element, into: &out)
            }
            out.append(ASCII.closeBracket)
        case .object(let members):
            out.append(ASCII.openBrace)
            for (i, (key, member)) in members.enumerated() {
                if i > 0 { out.append(ASCII.comma) }
                writeString(key, into: &out)
                out.append(ASCII.colon)
                write(member, into: &out)
            }
            out.append(ASCII.closeBrace)
        }
    }

    /// The compact JSON text of `value` as UTF-8 bytes.
    public static func write(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        write(value, into: &out)
        return out
    }

    /// Appends `s` as a quoted, escaped JSON string.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        var s = s
        s.withUTF8 { utf8 in
            out.reserveCapacity(out.count + utf8.count + 2)
            out.append(ASCII.quote)
            var runStart = 0
            for i in 0..<utf8.count {
                let b = utf8[i]
                guard b < 0x20 || b == ASCII.quote || b == ASCII.backslash else { continue }
                if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
                runStart = i + 1
                out.append(ASCII.backslash)
                switch b {
                case ASCII.quote, ASCII.backslash: out.append(b)
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                case ASCII.lf: out.append(UInt8(ascii: "n"))
                case ASCII.cr: out.append(UInt8(ascii: "r"))
                case ASCII.tab: out.append(UInt8(ascii: "t"))
                default:
                    let hex: StaticString = "0123456789abcdef"
                    out.append(contentsOf: [UInt8(ascii: "u"), ASCII.zero, ASCII.zero])
                    out.append(hex.utf8Start[Int(b >> 4)])
                    out.append(hex.utf8Start[Int(b & 0xF)])
                }
            }
            if runStart < utf8.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
            out.append(ASCII.quote)
        }
    }

    /// Appends `v` in decimal.
    public static func writeInteger(_ v: Int64, into out: inout [UInt8]) {
        if v < 0 { out.append(ASCII.minus) }
        var magnitude = v.magnitude
        if magnitude < 10 {
            out.append(ASCII.zero + UInt8(magnitude))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var n = 20
            while magnitude > 0 {
                n -= 1
                digits[n] = ASCII.zero + UInt8(magnitude % 10)
                magnitude /= 10
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[n...]))
        }
    }

    /// Appends `v` in the shortest form that reads back as the same bits (`null` if not finite).
    public static func writeDouble(_ v: Double, into out: inout [UInt8]) {
        guard v.isFinite else {
            appendASCII("null", to: &out)
            return
        }
        // Swift prints the shortest round-trip digits, always with "." or "e" ("3.0", "1e+16", "5e-324"):
        // valid JSON that reads back as a double.
        out.append(contentsOf: v.description.utf8)
    }

    /// Appends one `Float` in the shortest decimal form that reads back as the same bits, or `null` if it is
    /// not finite (JSON has no NaN or infinity; strict parsers refuse `inf` and `nan`).
    public static func writeFloat(_ f: Float, into out: inout [UInt8]) {
        if f.isFinite {
            out.append(contentsOf: f.description.utf8)
        } else {
            appendASCII("null", to: &out)
        }
    }

    /// Appends `[f,f,…]`: each `Float` in the shortest decimal form that reads back (with `strtof`, `Float(String)`
    /// or ``JSONLinesReader/parseRecordLine(_:lineNumber:)``) as the identical bits, `-0.0` included.
    /// A non-finite element (NaN, ±infinity) is written as `null`, which the record reader rejects.
    public static func writeFloats(_ v: UnsafeBufferPointer<Float>, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + 2 + v.count * 16)
        out.append(ASCII.openBracket)
        for i in 0..<v.count {
            if i > 0 { out.append(ASCII.comma) }
            let f = v[i]
            if f.isFinite {
                // `Float.description` is Swift's shortest round-trip formatting (always with "." or "e"). For a
                // Float it is at most 15 bytes, so the String lives inline: no allocation.
                out.append(contentsOf: f.description.utf8)
            } else {
                appendASCII("null", to: &out)
            }
        }
        out.append(ASCII.closeBracket)
    }

    /// Appends `[f,f,…]`; same format as the `UnsafeBufferPointer<Float>` overload.
    public static func writeFloats(_ v: [Float], into out: inout [UInt8]) {
        v.withUnsafeBufferPointer { writeFloats($0, into: &out) }
    }

    @inline(__always)
    static func appendASCII(_ s: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
}
