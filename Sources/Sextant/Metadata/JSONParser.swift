// Sextant — an embedded vector database. Licensed under Apache-2.0.

import OrderedCollections

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A strict RFC 8259 JSON parser working on UTF-8 bytes.
///
/// It accepts exactly one JSON value, optionally surrounded by whitespace (space, tab, CR, LF). Everything else
/// throws `SextantError` with code `.parse` and a message of the form `line L, column C: <what was wrong>`, where
/// the column is the 1-based byte offset within line `L`. The errors:
/// - anything after the value but whitespace ("unexpected data after the JSON value"), and empty input;
/// - malformed literals, and `NaN`, `Infinity` (not JSON);
/// - numbers with leading zeros (`01`), a lone `-`, a `.` or exponent without digits, `+1`, `.5`;
/// - numbers whose magnitude is too large for `Double` (`1e400`); tiny ones (`1e-400`) become `0.0`;
/// - in strings: an unescaped control character (below U+0020), invalid UTF-8, an unknown escape, a `\u`
///   escape that is not four hex digits, a lone or reversed surrogate (`\uD83D` must be followed by `\uDC00`–`\uDFFF`),
///   and a missing closing quote;
/// - in arrays and objects: a missing `,` `:` `]` or `}`, a trailing comma, a non-string key, a duplicate key;
/// - nesting deeper than ``maxDepth`` arrays and objects.
///
/// Numbers: an integer (no fraction, no exponent) that fits `Int64` becomes ``JSONValue/int(_:)``, every other number
/// ``JSONValue/double(_:)``, correctly rounded (the same `Double` as `Double(String)` gives).
public enum JSONParser {
    /// The deepest nesting of arrays and objects accepted. Deeper input is an error (not a crash).
    public static let maxDepth = 128

    /// Parses one JSON document from UTF-8 bytes.
    /// - Throws: `SextantError(.parse, …)` naming line and column of the first problem; see ``JSONParser``.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(SextantError) -> JSONValue {
        var scanner = JSONScanner(bytes, lineNumber: nil)
        return try scanner.parseDocument()
    }

    /// Parses one JSON document from UTF-8 bytes.
    /// - Throws: `SextantError(.parse, …)`; same rules as the `UnsafeRawBufferPointer` overload and ``JSONParser``.
    public static func parse(_ bytes: [UInt8]) throws(SextantError) -> JSONValue {
        try bytes.withUnsafeBytes { raw in Result { () throws(SextantError) in try parse(raw) } }.get()
    }

    /// Parses one JSON document from a string.
    /// - Throws: `SextantError(.parse, …)`; same rules as the `UnsafeRawBufferPointer` overload and ``JSONParser``.
    public static func parse(_ text: String) throws(SextantError) -> JSONValue {
        var text = text
        return try text.withUTF8 { utf8 in
            Result { () throws(SextantError) in try parse(UnsafeRawBufferPointer(utf8)) }
        }.get()
    }
}

// MARK: - Scanner

/// ASCII bytes the parser looks at, by name.
enum ASCII {
    static let tab: UInt8 = 0x09, lf: UInt8 = 0x0A, cr: UInt8 = 0x0D, space: UInt8 = 0x20
    static let quote: UInt8 = 0x22, plus: UInt8 = 0x2B, comma: UInt8 = 0x2C, minus: UInt8 = 0x2D, dot: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F, zero: UInt8 = 0x30, nine: UInt8 = 0x39, colon: UInt8 = 0x3A
    static let backslash: UInt8 = 0x5C, openBracket: UInt8 = 0x5B, closeBracket: UInt8 = 0x5D
    static let openBrace: UInt8 = 0x7B, closeBrace: UInt8 = 0x7D
    static let lowerE: UInt8 = 0x65, lowerN: UInt8 = 0x6E, lowerT: UInt8 = 0x74, lowerF: UInt8 = 0x66
}

/// The cursor behind ``JSONParser`` and the JSON Lines record parser: a position in a byte buffer plus the
/// helpers that read JSON tokens at it. `bytes` must stay valid while the scanner is used.
struct JSONScanner {
    let bytes: UnsafeRawBufferPointer
    let end: Int
    var pos = 0
    /// The 1-based line number of `bytes` when it is one line of a JSON Lines file; nil for a whole document,
    /// where error positions are computed by counting newlines.
    let lineNumber: Int?
    /// Reused buffer for strings that contain escapes.
    var scratch: [UInt8] = []

    init(_ bytes: UnsafeRawBufferPointer, lineNumber: Int?) {
        self.bytes = bytes
        self.end = bytes.count
        self.lineNumber = lineNumber
    }

    // MARK: Errors

    /// A `.parse` error at byte `offset`: "line L, column C: what".
    func error(_ what: String, at offset: Int) -> SextantError {
        let offset = min(max(offset, 0), end)
        if let lineNumber {
            return SextantError(.parse, "line \(lineNumber), column \(offset + 1): \(what)")
        }
        var line = 1
        var lineStart = 0
        for i in 0..<offset where bytes[i] == ASCII.lf {
            line += 1
            lineStart = i + 1
        }
        return SextantError(.parse, "line \(line), column \(offset - lineStart + 1): \(what)")
    }

    /// Names the byte at `offset` for an error message without quoting input beyond that one byte.
    func describe(at offset: Int) -> String {
        guard offset < end else { return lineNumber == nil ? "end of input" : "end of line" }
        let b = bytes[offset]
        if b > 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x\(hex2(b))"
    }

    // MARK: Basics

    @inline(__always)
    mutating func skipWhitespace() {
        while pos < end {
            let b = bytes[pos]
            guard b == ASCII.space || b == ASCII.lf || b == ASCII.cr || b == ASCII.tab else { return }
            pos += 1
        }
    }

    /// The byte at `pos`, or nil at the end.
    @inline(__always)
    var peek: UInt8? { pos < end ? bytes[pos] : nil }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- ASCII.zero < 10 }

    /// Parses the whole buffer as one value followed only by whitespace.
    mutating func parseDocument() throws(SextantError) -> JSONValue {
        let value = try parseValue(depth: 0)
        skipWhitespace()
        if pos < end { throw error("unexpected data after the JSON value: \(describe(at: pos))", at: pos) }
        return value
    }

    /// Parses one value at `pos` (after optional whitespace). `depth` counts the arrays and objects around it.
    mutating func parseValue(depth: Int) throws(SextantError) -> JSONValue {
        skipWhitespace()
        guard pos < end else {
            throw error("expected a JSON value but found \(describe(at: pos))", at: pos)
        }
        switch bytes[pos] {
        case ASCII.openBrace: return try parseObject(depth: depth + 1)
        case ASCII.openBracket: return try parseArray(depth: depth + 1)
        case ASCII.quote: return .string(try parseString())
        case ASCII.lowerT:
            try expectLiteral("true")
            return .bool(true)
        case ASCII.lowerF:
            try expectLiteral("false")
            return .bool(false)
        case ASCII.lowerN:
            try expectLiteral("null")
            return .null
        case ASCII.minus, ASCII.zero...ASCII.nine:
            return try parseNumberValue()
        case UInt8(ascii: "N"), UInt8(ascii: "I"):
            throw error("NaN and Infinity are not valid JSON", at: pos)
        case ASCII.closeBracket, ASCII.closeBrace, ASCII.comma, ASCII.colon:
            throw error("expected a JSON value but found \(describe(at: pos))", at: pos)
        default:
            throw error("unexpected \(describe(at: pos)) where a JSON value was expected", at: pos)
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(SextantError) {
        let n = literal.utf8CodeUnitCount
        let start = literal.utf8Start
        for i in 0..<n where pos + i >= end || bytes[pos + i] != start[i] {
            throw error("invalid literal (expected '\(literal)')", at: pos)
        }
        pos += n
    }

    // MARK: Containers

    mutating func enterContainer(depth: Int) throws(SextantError) {
        if depth > JSONParser.maxDepth {
            throw error("arrays and objects nested deeper than \(JSONParser.maxDepth) levels", at: pos)
        }
        pos += 1
    }

    mutating func parseArray(depth: Int) throws(SextantError) -> JSONValue {
        try enterContainer(depth: depth)
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek == ASCII.closeBracket {
            pos += 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard pos < end else {
                throw error("unterminated array: expected ',' or ']' but found \(describe(at: pos))", at: pos)
            }
            let b = bytes[pos]
            pos += 1
            if b == ASCII.closeBracket { return .array(elements) }
            if b != ASCII.comma {
                throw error("expected ',' or ']' after an array element but found \(describe(at: pos - 1))", at: pos - 1)
            }
            skipWhitespace()
            if peek == ASCII.closeBracket { throw error("trailing comma in array", at: pos) }
        }
    }

    mutating func parseObject(depth: Int) throws(SextantError) -> JSONValue {
        try enterContainer(depth: depth)
        var members = OrderedDictionary<String, JSONValue>()
        skipWhitespace()
        if peek == ASCII.closeBrace {
            pos += 1
            return .object(members)
        }
        while true {
            let keyStart = pos
            let key = try parseKey()
            let value = try parseValue(depth: depth)
            if members.updateValue(value, forKey: key) != nil {
                throw error("duplicate key \(quotedForMessage(key)) in object", at: keyStart)
            }
            skipWhitespace()
            guard pos < end else {
                throw error("unterminated object: expected ',' or '}' but found \(describe(at: pos))", at: pos)
            }
            let b = bytes[pos]
            pos += 1
            if b == ASCII.closeBrace { return .object(members) }
            if b != ASCII.comma {
                throw error("expected ',' or '}' after an object member but found \(describe(at: pos - 1))", at: pos - 1)
            }
            skipWhitespace()
        }
    }

    /// Parses `"key"` and the `:` after it (whitespace allowed around). `pos` must be at the key (whitespace skipped).
    mutating func parseKey() throws(SextantError) -> String {
        guard peek == ASCII.quote else {
            if peek == ASCII.closeBrace { throw error("trailing comma in object", at: pos) }
            throw error("expected a string key but found \(describe(at: pos))", at: pos)
        }
        let key = try parseString()
        try expectColon()
        return key
    }

    mutating func expectColon() throws(SextantError) {
        skipWhitespace()
        guard peek == ASCII.colon else {
            throw error("expected ':' after an object key but found \(describe(at: pos))", at: pos)
        }
        pos += 1
    }

    // MARK: Strings

    /// Scans the string at `pos` (which must be at its opening quote) without decoding it.
    /// Returns the byte range of its content and whether it contains escapes; `pos` moves past the closing quote.
    /// Validates everything but escapes: control characters and UTF-8.
    @inline(__always)
    mutating func scanString() throws(SextantError) -> (start: Int, end: Int, escaped: Bool) {
        let start = pos + 1
        var i = start
        while true {
            // Eight bytes at a time while none is a quote, a backslash, a control character or non-ASCII.
            while i + 8 <= end {
                let w = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let ones: UInt64 = 0x0101_0101_0101_0101
                let high: UInt64 = 0x8080_8080_8080_8080
                let quote = w ^ (ones &* UInt64(ASCII.quote))
                let backslash = w ^ (ones &* UInt64(ASCII.backslash))
                // A zero byte in `quote` or `backslash`, a byte below 0x20 (w - 0x20…, borrow-exact for the
                // lowest such byte) or one with its high bit set.
                let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | (w &- ones &* 0x20) | w
                if special & high != 0 { break }
                i += 8
            }
            guard i < end else { throw error("unterminated string", at: start - 1) }
            let b = bytes[i]
            if b == ASCII.quote {
                pos = i + 1
                return (start, i, false)
            }
            if b == ASCII.backslash { return try scanEscapedString(start: start, from: i) }
            if b < 0x20 {
                throw error("unescaped control character 0x\(hex2(b)) in string", at: i)
            }
            if b >= 0x80 {
                i = try validateUTF8Sequence(at: i)
            } else {
                i += 1
            }
        }
    }

    /// Continues `scanString` after the first backslash, validating escapes.
    mutating func scanEscapedString(
        start: Int, from first: Int
    ) throws(SextantError) -> (start: Int, end: Int, escaped: Bool) {
        var i = first
        while i < end {
            let b = bytes[i]
            if b == ASCII.quote {
                pos = i + 1
                return (start, i, true)
            }
            if b == ASCII.backslash {
                i = try validateEscape(at: i)
            } else if b < 0x20 {
                throw error("unescaped control character 0x\(hex2(b)) in string", at: i)
            } else if b >= 0x80 {
                i = try validateUTF8Sequence(at: i)
            } else {
                i += 1
            }
        }
        throw error("unterminated string", at: start - 1)
    }

    /// Checks the escape at `i` (a backslash); returns the offset after it (after both halves of a surrogate pair).
    func validateEscape(at i: Int) throws(SextantError) -> Int {
        guard i + 1 < end else { throw error("unterminated string", at: i) }
        switch bytes[i + 1] {
        case ASCII.quote, ASCII.backslash, ASCII.slash, UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
            UInt8(ascii: "r"), UInt8(ascii: "t"):
            return i + 2
        case UInt8(ascii: "u"):
            let (_, next) = try decodeUnicodeEscape(at: i)
            return next
        default:
            throw error("invalid escape '\\\(describe(at: i + 1).trimmingQuotes)' in string", at: i)
        }
    }

    /// Decodes `\uXXXX` (and its low surrogate partner if it is a high surrogate) at `i`.
    /// Returns the scalar and the offset after the escape(s).
    func decodeUnicodeEscape(at i: Int) throws(SextantError) -> (Unicode.Scalar, Int) {
        let unit = try hex4(at: i)
        if unit >= 0xDC00 && unit <= 0xDFFF {
            throw error(
                "lone low surrogate \\u\(hex4String(unit)) in string (it must follow a \\uD800–\\uDBFF escape)", at: i)
        }
        if unit >= 0xD800 && unit <= 0xDBFF {
            let j = i + 6
            guard j + 1 < end, bytes[j] == ASCII.backslash, bytes[j + 1] == UInt8(ascii: "u") else {
                throw error(
                    "lone high surrogate \\u\(hex4String(unit)) in string "
                        + "(it must be followed by a \\uDC00–\\uDFFF escape)", at: i)
            }
            let low = try hex4(at: j)
            guard low >= 0xDC00 && low <= 0xDFFF else {
                throw error(
                    "high surrogate \\u\(hex4String(unit)) is followed by \\u\(hex4String(low)), "
                        + "not by a \\uDC00–\\uDFFF low surrogate", at: i)
            }
            let value = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
            // Always valid: 0x10000...0x10FFFF.
            return (Unicode.Scalar(value) ?? "\u{FFFD}", j + 6)
        }
        return (Unicode.Scalar(UInt32(unit)) ?? "\u{FFFD}", i + 6)
    }

    /// The four hex digits of the `\u` escape whose backslash is at `i`.
    func hex4(at i: Int) throws(SextantError) -> UInt16 {
        guard i + 6 <= end else { throw error("\\u escape needs four hex digits", at: i) }
        var v: UInt16 = 0
        for k in 2..<6 {
            let b = bytes[i + k]
            let d: UInt8
            switch b {
            case ASCII.zero...ASCII.nine: d = b - ASCII.zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw error("\\u escape needs four hex digits", at: i)
            }
            v = v << 4 | UInt16(d)
        }
        return v
    }

    /// Checks the UTF-8 sequence starting at `i` (a byte ≥ 0x80) against RFC 3629 (no overlong forms, no
    /// surrogates, nothing above U+10FFFF); returns the offset after it.
    func validateUTF8Sequence(at i: Int) throws(SextantError) -> Int {
        let b0 = bytes[i]
        let length: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF  // range of the second byte
        switch b0 {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; hi = 0x9F
        case 0xF0: length = 4; lo = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; hi = 0x8F
        default: throw error("invalid UTF-8 byte 0x\(hex2(b0)) in string", at: i)
        }
        guard i + length <= end else { throw error("truncated UTF-8 sequence in string", at: i) }
        let b1 = bytes[i + 1]
        guard b1 >= lo && b1 <= hi else { throw error("invalid UTF-8 sequence in string", at: i) }
        for k in 2..<length where bytes[i + k] & 0xC0 != 0x80 {
            throw error("invalid UTF-8 sequence in string", at: i)
        }
        return i + length
    }

    /// Parses the string at `pos` (at its opening quote) and returns it decoded; `pos` moves past it.
    mutating func parseString() throws(SextantError) -> String {
        let (start, stop, escaped) = try scanString()
        if !escaped {
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<stop]), as: UTF8.self)
        }
        return try decodeEscaped(start: start, end: stop)
    }

    /// Decodes the already validated string content in `start..<end` that contains escapes.
    mutating func decodeEscaped(start: Int, end stop: Int) throws(SextantError) -> String {
        scratch.removeAll(keepingCapacity: true)
        var i = start
        var runStart = start
        while i < stop {
            guard bytes[i] == ASCII.backslash else {
                i += 1
                continue
            }
            if runStart < i { scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<i])) }
            let e = bytes[i + 1]
            switch e {
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                let (scalar, next) = try decodeUnicodeEscape(at: i)
                appendUTF8(scalar)
                i = next
                runStart = i
                continue
            default: scratch.append(e)  // " \ /
            }
            i += 2
            runStart = i
        }
        if runStart < stop { scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<stop])) }
        return String(decoding: scratch, as: UTF8.self)
    }

    mutating func appendUTF8(_ scalar: Unicode.Scalar) {
        let v = scalar.value
        switch v {
        case 0..<0x80:
            scratch.append(UInt8(v))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | v >> 6))
            scratch.append(UInt8(0x80 | v & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | v >> 12))
            scratch.append(UInt8(0x80 | v >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | v & 0x3F))
        default:
            scratch.append(UInt8(0xF0 | v >> 18))
            scratch.append(UInt8(0x80 | v >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | v >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | v & 0x3F))
        }
    }

    // MARK: Numbers

    /// A number token split into decimal significand and exponent: value = ±significand × 10^exponent
    /// (exactly, unless `truncated`: then digits beyond the 19th significant one were non-zero and dropped).
    struct DecimalNumber {
        var start: Int
        var negative: Bool
        var significand: UInt64
        var exponent: Int
        var truncated: Bool
        var isInteger: Bool
    }

    /// Scans a number token at `pos` by the RFC 8259 grammar; `pos` moves past it.
    @inline(__always)
    mutating func scanNumber() throws(SextantError) -> DecimalNumber {
        let start = pos
        var i = pos
        let negative = bytes[i] == ASCII.minus
        if negative { i += 1 }
        guard i < end, Self.isDigit(bytes[i]) else {
            if i < end, bytes[i] == UInt8(ascii: "I") { throw error("NaN and Infinity are not valid JSON", at: start) }
            throw error("expected a digit after '-' but found \(describe(at: i))", at: i)
        }
        var significand: UInt64 = 0
        var digits = 0  // significant digits in `significand`
        var exponent = 0
        var truncated = false
        if bytes[i] == ASCII.zero {
            i += 1
            if i < end, Self.isDigit(bytes[i]) { throw error("leading zeros are not allowed in numbers", at: start) }
        } else {
            while i < end {
                let d = bytes[i] &- ASCII.zero
                guard d < 10 else { break }
                if digits < 19 {
                    significand = significand &* 10 &+ UInt64(d)
                    digits += 1
                } else {
                    exponent += 1
                    if d != 0 { truncated = true }
                }
                i += 1
            }
        }
        var isInteger = true
        if i < end, bytes[i] == ASCII.dot {
            isInteger = false
            i += 1
            guard i < end, Self.isDigit(bytes[i]) else {
                throw error("expected a digit after '.' but found \(describe(at: i))", at: i)
            }
            while i < end {
                let d = bytes[i] &- ASCII.zero
                guard d < 10 else { break }
                if digits < 19 {
                    if significand != 0 || d != 0 {
                        significand = significand &* 10 &+ UInt64(d)
                        digits += 1
                    }
                    exponent -= 1
                } else if d != 0 {
                    truncated = true
                }
                i += 1
            }
        }
        if i < end, bytes[i] | 0x20 == ASCII.lowerE {
            isInteger = false
            i += 1
            var negativeExponent = false
            if i < end, bytes[i] == ASCII.minus || bytes[i] == ASCII.plus {
                negativeExponent = bytes[i] == ASCII.minus
                i += 1
            }
            guard i < end, Self.isDigit(bytes[i]) else {
                throw error("expected a digit in the exponent but found \(describe(at: i))", at: i)
            }
            var e = 0
            while i < end {
                let d = bytes[i] &- ASCII.zero
                guard d < 10 else { break }
                if e < 1_000_000 { e = e * 10 + Int(d) }
                i += 1
            }
            exponent += negativeExponent ? -e : e
        }
        pos = i
        return DecimalNumber(
            start: start, negative: negative, significand: significand, exponent: exponent,
            truncated: truncated, isInteger: isInteger)
    }

    /// Exact powers of ten as `Double` (10^22 is the largest exact one).
    static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    /// The correctly rounded `Double` of `significand × 10^exponent` when one exact operation gives it
    /// (Clinger's fast path: significand ≤ 2^53, |exponent| ≤ 22); nil otherwise.
    @inline(__always)
    static func fastDouble(_ significand: UInt64, _ exponent: Int) -> Double? {
        guard significand <= 1 << 53, exponent >= -22, exponent <= 22 else { return nil }
        return powersOfTen.withUnsafeBufferPointer { p in
            exponent >= 0 ? Double(significand) * p[exponent] : Double(significand) / p[-exponent]
        }
    }

    /// Converts the token `start..<pos` with the C library (correctly rounded, like `Double(String)`).
    /// `strtod` needs a terminated string, so the token is copied into a small buffer with a NUL.
    func slowDouble(start: Int) -> Double {
        withTerminatedToken(start: start) { strtod($0, nil) }
    }

    /// Converts the token `start..<pos` with the C library (correctly rounded, like `Float(String)`).
    func slowFloat(start: Int) -> Float {
        withTerminatedToken(start: start) { strtof($0, nil) }
    }

    /// Calls `body` with the NUL-terminated token `start..<pos`. The scanner validated the token, so it contains
    /// only `-+.eE0-9`, which `strtod` reads the same in every locale except for `.`: the copy replaces `.` by the
    /// C locale's current decimal point (`nl_langinfo(RADIXCHAR)`), so that a program that called `setlocale`
    /// still gets correct numbers.
    func withTerminatedToken<T>(start: Int, _ body: (UnsafePointer<CChar>) -> T) -> T {
        let count = pos - start
        let radix: UnsafePointer<CChar>? = UnsafePointer(nl_langinfo(nl_item(RADIXCHAR)))
        let radixLength = radix.map { strlen($0) } ?? 0
        let plainDot = radixLength == 0 || (radixLength == 1 && radix?.pointee == CChar(bitPattern: ASCII.dot))
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + radixLength + 1) { buffer in
            var n = 0
            for i in start..<pos {
                let b = bytes[i]
                if b == ASCII.dot && !plainDot, let radix {
                    for k in 0..<radixLength {
                        buffer[n] = radix[k]
                        n += 1
                    }
                } else {
                    buffer[n] = CChar(bitPattern: b)
                    n += 1
                }
            }
            buffer[n] = 0
            guard let base = buffer.baseAddress else { return "0".withCString(body) }  // capacity ≥ 1: never nil
            return body(UnsafePointer(base))
        }
    }

    /// Parses a number at `pos` into a ``JSONValue``.
    mutating func parseNumberValue() throws(SextantError) -> JSONValue {
        let n = try scanNumber()
        if n.isInteger && !n.truncated && n.exponent == 0 {
            if n.negative {
                if n.significand <= UInt64(Int64.max) { return .int(-Int64(n.significand)) }
                if n.significand == UInt64(Int64.max) + 1 { return .int(.min) }
            } else if n.significand <= UInt64(Int64.max) {
                return .int(Int64(n.significand))
            }
        }
        var value: Double
        if n.significand == 0 {
            value = 0
        } else if !n.truncated, let fast = Self.fastDouble(n.significand, n.exponent) {
            value = fast
        } else {
            value = slowDouble(start: n.start)
            if !value.isFinite { throw error("number is out of range for a 64-bit float", at: n.start) }
            return .double(value)  // strtod applied the sign
        }
        if n.negative { value = -value }
        return .double(value)
    }

    /// Parses a number at `pos` as the nearest `Float` — bit-identical to `Float(String)` of the token.
    /// The result may be infinite (`1e39`); the caller decides whether that is an error.
    @inline(__always)
    mutating func parseFloat32() throws(SextantError) -> Float {
        let n = try scanNumber()
        var value: Float
        if n.significand == 0 {
            value = 0
        } else if !n.truncated, let d = Self.fastDouble(n.significand, n.exponent),
            // `d` is the correctly rounded Double of the exact value x, and lies in Float's normal range
            // (1e-22 ≤ d < 2^53·1e22). Rounding d to Float gives the correctly rounded Float of x unless d sits
            // exactly on the midpoint between two Floats (low 29 fraction bits = 1000…0): then x may be on
            // either side of it and only an exact conversion can tell.
            d.bitPattern & 0x1FFF_FFFF != 0x1000_0000
        {
            value = Float(d)
        } else {
            return slowFloat(start: n.start)  // strtof applied the sign
        }
        if n.negative { value = -value }
        return value
    }
}

// MARK: - Helpers

/// Two uppercase hex digits.
func hex2(_ b: UInt8) -> String {
    let digits = Array("0123456789ABCDEF".utf8)
    return String(decoding: [digits[Int(b >> 4)], digits[Int(b & 0xF)]], as: UTF8.self)
}

/// Four uppercase hex digits.
func hex4String(_ v: UInt16) -> String { hex2(UInt8(v >> 8)) + hex2(UInt8(v & 0xFF)) }

/// A key or other short input quoted for an error message, cut to 64 characters.
func quotedForMessage(_ s: String) -> String {
    let cut = s.count > 64 ? String(s.prefix(64)) + "…" : s
    return String(reflecting: cut)
}

extension String {
    /// `'x'` → `x` (for building escape descriptions).
    fileprivate var trimmingQuotes: String {
        hasPrefix("'") && hasSuffix("'") && count >= 3 ? String(dropFirst().dropLast()) : self
    }
}
