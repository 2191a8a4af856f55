// Sextant — an embedded vector database. Licensed under Apache-2.0.

import OrderedCollections
import SextantTestSupport
import Testing

@testable import Sextant

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Helpers

/// SplitMix64: a tiny seeded generator, so failures reproduce.
private typealias SplitMix64 = RepeatableRandomNumberGenerator

/// Equality that also tells `-0.0` from `0.0` (and is what "round trip" means here).
private func identical(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.double(let x), .double(let y)): return x.bitPattern == y.bitPattern
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { identical($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && identical($0.value, $1.value) }
    default: return a == b
    }
}

private func text(_ v: JSONValue) -> String { String(decoding: JSONWriter.write(v), as: UTF8.self) }

/// The error `parse` throws for `input`, or nil if it parsed.
private func parseError(_ input: String) -> SextantError? {
    do {
        _ = try JSONParser.parse(input)
        return nil
    } catch {
        return error
    }
}

private func recordError(_ input: String, line: Int = 1) -> SextantError? {
    do {
        _ = try JSONLinesReader.parseRecordLine(input, lineNumber: line)
        return nil
    } catch {
        return error
    }
}

private func record(_ input: String, line: Int = 1) throws -> ParsedRecordLine {
    try JSONLinesReader.parseRecordLine(input, lineNumber: line)
}

/// Writes `bytes` to a new temporary file, calls `body` with its path, then removes it.
private func withTempFile(_ bytes: [UInt8], _ body: (String) throws -> Void) throws {
    var template = Array("/tmp/sextant-jsonl-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    #expect(fd >= 0)
    let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer { unlink(path) }
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
        #expect(n > 0)
        if n <= 0 { break }
        written += n
    }
    close(fd)
    try body(path)
}

/// All non-blank lines of `bytes` as (text, line number), read with the given chunk size.
private func readLines(_ bytes: [UInt8], chunkSize: Int) throws -> [(String, Int)] {
    var lines: [(String, Int)] = []
    try withTempFile(bytes) { path in
        let reader = try JSONLinesReader(path: path, chunkSize: chunkSize)
        try reader.forEachLine { line, number in
            lines.append((String(decoding: line, as: UTF8.self), number))
            return true
        }
    }
    return lines
}

// MARK: - Random trees

private struct TreeGenerator {
    var rng: SplitMix64

    mutating func double() -> Double {
        switch rng.next() % 6 {
        case 0: return -0.0
        case 1: return Double(Int64(bitPattern: rng.next()) >> 20) / 1024
        case 2: return Double(rng.next() % 1000) + 0.5
        default:
            while true {
                let d = Double(bitPattern: rng.next())
                if d.isFinite { return d }
            }
        }
    }

    mutating func int() -> Int64 {
        switch rng.next() % 4 {
        case 0: return [Int64.min, .max, 0, -1, 1][Int(rng.next() % 5)]
        case 1: return Int64(bitPattern: rng.next())
        default: return Int64(bitPattern: rng.next()) >> Int(rng.next() % 63)
        }
    }

    mutating func string() -> String {
        let pool: [Unicode.Scalar] = [
            "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{08}", "\u{0C}", "\u{00}", "\u{1F}", "\u{7F}",
            "é", "ß", "€", "中", "\u{FFFD}", "\u{FEFF}", "😀", "𝄞", "\u{10FFFF}", "\u{2028}",
        ]
        let length = Int(rng.next() % 24)
        var s = String.UnicodeScalarView()
        for _ in 0..<length {
            if rng.next() % 3 == 0 {
                s.append(pool[Int(rng.next() % UInt64(pool.count))])
            } else {
                s.append(Unicode.Scalar(UInt8(0x20 + rng.next() % 95)))
            }
        }
        return String(s)
    }

    mutating func value(depth: Int) -> JSONValue {
        let kinds: UInt64 = depth >= 5 ? 6 : 8
        switch rng.next() % kinds {
        case 0: return .null
        case 1: return .bool(rng.next() & 1 == 0)
        case 2: return .int(int())
        case 3: return .double(double())
        case 4, 5: return .string(string())
        case 6: return .array((0..<Int(rng.next() % 6)).map { _ in value(depth: depth + 1) })
        default:
            var members = OrderedDictionary<String, JSONValue>()
            for _ in 0..<Int(rng.next() % 6) { members[string()] = value(depth: depth + 1) }
            return .object(members)
        }
    }
}

// MARK: - JSONValue

@Suite struct JSONValueTests {
    @Test func literalsAndAccessors() {
        let v: JSONValue = [
            "name": "Ada", "age": 36, "height": 1.65, "admin": true, "tags": ["x", 2, nil], "none": nil,
        ]
        #expect(v["name"]?.stringValue == "Ada")
        #expect(v["age"]?.intValue == 36)
        #expect(v["age"]?.doubleValue == 36.0)  // int promotes
        #expect(v["height"]?.doubleValue == 1.65)
        #expect(v["height"]?.intValue == nil)
        #expect(v["admin"]?.boolValue == true)
        #expect(v["tags"]?.arrayValue?.count == 3)
        #expect(v["tags"]?[1]?.intValue == 2)
        #expect(v["tags"]?[3] == nil)
        #expect(v["none"]?.isNull == true)
        #expect(v["missing"] == nil)
        #expect(v.objectValue?.keys.elementsEqual(["name", "age", "height", "admin", "tags", "none"]) == true)
        #expect(JSONValue.string("x")["key"] == nil)
        #expect(JSONValue.int(1).stringValue == nil)
    }

    @Test func descriptionIsCompactJSON() {
        let v: JSONValue = ["b": [1, 2.5, "x\"y"], "a": nil, "c": false, "d": 3.0, "e": -0.0]
        #expect(v.description == #"{"b":[1,2.5,"x\"y"],"a":null,"c":false,"d":3.0,"e":-0.0}"#)
    }

    @Test func orderIsPartOfEquality() throws {
        #expect(try JSONParser.parse(#"{"a":1,"b":2}"#) != JSONParser.parse(#"{"b":2,"a":1}"#))
        #expect(JSONValue.int(1) != JSONValue.double(1))
    }
}

// MARK: - Parser and writer

@Suite struct JSONParserTests {
    @Test func randomTreesRoundTrip() throws {
        var generator = TreeGenerator(rng: SplitMix64(seed: 0x5EC7_A47))
        for _ in 0..<3000 {
            let v = generator.value(depth: 0)
            let bytes = JSONWriter.write(v)
            let back = try JSONParser.parse(bytes)
            #expect(identical(back, v), "\(text(v))")
            #expect(JSONWriter.write(back) == bytes)
        }
    }

    @Test func randomDoublesRoundTrip() throws {
        var rng = SplitMix64(seed: 99)
        var values: [JSONValue] = []
        while values.count < 20000 {
            let d = Double(bitPattern: rng.next())
            if d.isFinite { values.append(.double(d)) }
        }
        values += [
            .double(-0.0), .double(.leastNonzeroMagnitude), .double(.greatestFiniteMagnitude),
            .double(-.greatestFiniteMagnitude), .double(.leastNormalMagnitude), .double(0.1), .double(1e16),
            .double(3.0), .double(-1e-300), .double(0x1p53 + 2), .double(0x1p53),
        ]
        let back = try JSONParser.parse(JSONWriter.write(.array(values)))
        #expect(identical(back, .array(values)))
    }

    @Test func scalarsAndWhitespace() throws {
        #expect(try JSONParser.parse("null") == .null)
        #expect(try JSONParser.parse(" \t\r\n true \n") == .bool(true))
        #expect(try JSONParser.parse("false") == .bool(false))
        #expect(try JSONParser.parse(#""""#) == .string(""))
        #expect(try JSONParser.parse("[]") == .array([]))
        #expect(try JSONParser.parse("{}") == .object([:]))
        #expect(try JSONParser.parse("[ 1 , [ ] , { } ,\"a\" ]") == [1, [], [:], "a"])
        #expect(try JSONParser.parse(#"{ "a" : { "b" : [ null ] } }"#) == ["a": ["b": [nil]]])
    }

    @Test func numbers() throws {
        #expect(try JSONParser.parse("0") == .int(0))
        #expect(try JSONParser.parse("-0") == .int(0))
        #expect(try JSONParser.parse("-0.0").doubleValue?.bitPattern == (-0.0 as Double).bitPattern)
        #expect(try JSONParser.parse("-0e0").doubleValue?.bitPattern == (-0.0 as Double).bitPattern)
        #expect(try JSONParser.parse("0e5") == .double(0))
        #expect(try JSONParser.parse("1E+2") == .double(100))
        #expect(try JSONParser.parse("1e-2") == .double(0.01))
        #expect(try JSONParser.parse("2.50") == .double(2.5))
        #expect(try JSONParser.parse("9223372036854775807") == .int(.max))
        #expect(try JSONParser.parse("-9223372036854775808") == .int(.min))
        #expect(try JSONParser.parse("9223372036854775808") == .double(9223372036854775808))
        #expect(try JSONParser.parse("-9223372036854775809") == .double(-0x1p63))
        #expect(try JSONParser.parse("18446744073709551616") == .double(18446744073709551616))
        #expect(try JSONParser.parse("10000000000000000000") == .double(1e19))
        #expect(try JSONParser.parse("1e-400") == .double(0))
        #expect(try JSONParser.parse("4.9406564584124654e-324") == .double(.leastNonzeroMagnitude))
        #expect(try JSONParser.parse("1.7976931348623157e308") == .double(.greatestFiniteMagnitude))
        let long = [
            "3.14159265358979323846264338327950288419716939937510", "123456789012345678901234567890",
            "0.000000000000000000000000000000000000001234567890123456789", "9007199254740993.0",
            "2.2250738585072011e-308", "0.1e1", "1e22", "1e23", "12345678901234567e-40", "-7.3e-5",
            "1" + String(repeating: "0", count: 300) + ".5",
        ]
        for s in long {
            #expect(try JSONParser.parse(s) == .double(Double(s)!), "\(s)")
        }
        // Random decimal strings: the same Double as Double(String).
        var rng = SplitMix64(seed: 7)
        for _ in 0..<20000 {
            var s = rng.next() & 1 == 0 ? "" : "-"
            s += String(rng.next() % 9 + 1)
            for _ in 0..<Int(rng.next() % 22) { s += String(rng.next() % 10) }
            if rng.next() & 1 == 0 { s += "." + String(rng.next() % 100_000) }
            s += "e" + String(Int(rng.next() % 700) - 350)
            guard let want = Double(s), want.isFinite else { continue }
            #expect(try JSONParser.parse(s).doubleValue?.bitPattern == want.bitPattern, "\(s)")
        }
    }

    @Test func strings() throws {
        #expect(try JSONParser.parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{08}\u{0C}\n\r\t"))
        #expect(try JSONParser.parse(#""\u00e9\u00C9\u0000""#) == .string("éÉ\u{0000}"))
        #expect(try JSONParser.parse(#""\uD83D\uDE00""#) == .string("😀"))
        #expect(try JSONParser.parse(#""a\ud834\udd1eb""#) == .string("a𝄞b"))
        #expect(try JSONParser.parse("\"é😀中\u{10FFFF}\"") == .string("é😀中\u{10FFFF}"))
        #expect(try JSONParser.parse("\"\u{7F}\"") == .string("\u{7F}"))
        let long = String(repeating: "abcdefgh", count: 1000) + "é" + String(repeating: "x", count: 13)
        #expect(try JSONParser.parse("\"\(long)\"") == .string(long))
        #expect(try JSONParser.parse(#"{"k\u0065y":1}"#) == ["key": 1])
    }

    @Test func nestingLimit() throws {
        let ok = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(try JSONParser.parse(ok).arrayValue != nil)
        let okObject = String(repeating: #"{"a":"#, count: 127) + "[]" + String(repeating: "}", count: 127)
        #expect(try JSONParser.parse(okObject).objectValue != nil)
        let deep = String(repeating: "[", count: 129) + String(repeating: "]", count: 129)
        let error = try #require(parseError(deep))
        #expect(error.code == .parse)
        #expect(error.message == "line 1, column 129: arrays and objects nested deeper than 128 levels")
        // Very deep input fails cleanly instead of overflowing the stack.
        #expect(parseError(String(repeating: "[", count: 100_000)) != nil)
    }

    /// Every error: input, expected line and column, and a phrase of the message.
    @Test(arguments: [
        ("", 1, 1, "expected a JSON value but found end of input"),
        ("   ", 1, 4, "expected a JSON value"),
        ("1 2", 1, 3, "unexpected data after the JSON value: '2'"),
        ("{} x", 1, 4, "unexpected data after the JSON value"),
        ("nul", 1, 1, "invalid literal (expected 'null')"),
        ("tru", 1, 1, "invalid literal (expected 'true')"),
        ("[falsy]", 1, 2, "invalid literal (expected 'false')"),
        ("NaN", 1, 1, "NaN and Infinity are not valid JSON"),
        ("[1, Infinity]", 1, 5, "NaN and Infinity are not valid JSON"),
        ("-Infinity", 1, 1, "NaN and Infinity are not valid JSON"),
        ("01", 1, 1, "leading zeros are not allowed"),
        ("[-012]", 1, 2, "leading zeros are not allowed"),
        ("-", 1, 2, "expected a digit after '-' but found end of input"),
        ("-a", 1, 2, "expected a digit after '-' but found 'a'"),
        ("1.", 1, 3, "expected a digit after '.'"),
        ("1.e5", 1, 3, "expected a digit after '.'"),
        ("1e", 1, 3, "expected a digit in the exponent"),
        ("1e+", 1, 4, "expected a digit in the exponent"),
        (".5", 1, 1, "unexpected '.' where a JSON value was expected"),
        ("+1", 1, 1, "unexpected '+' where a JSON value was expected"),
        ("1e400", 1, 1, "number is out of range for a 64-bit float"),
        ("[-1e999]", 1, 2, "number is out of range for a 64-bit float"),
        ("\"abc", 1, 1, "unterminated string"),
        ("[\"a\tb\"]", 1, 4, "unescaped control character 0x09 in string"),
        ("\"a\nb\"", 1, 3, "unescaped control character 0x0A in string"),
        (#""\x""#, 1, 2, "invalid escape '\\x' in string"),
        (#""\u12""#, 1, 2, "\\u escape needs four hex digits"),
        (#""\u12G4""#, 1, 2, "\\u escape needs four hex digits"),
        (#""\uD83D""#, 1, 2, "lone high surrogate \\uD83D"),
        (#""ab\uD83Dx""#, 1, 4, "lone high surrogate"),
        (#""\uDE00""#, 1, 2, "lone low surrogate \\uDE00"),
        (#""\uD83D\u0041""#, 1, 2, "high surrogate \\uD83D is followed by \\u0041"),
        (#""\uD83D\uD83D""#, 1, 2, "high surrogate \\uD83D is followed by \\uD83D"),
        ("[1,]", 1, 4, "trailing comma in array"),
        ("[1 2]", 1, 4, "expected ',' or ']' after an array element but found '2'"),
        ("[1", 1, 3, "unterminated array"),
        ("[", 1, 2, "expected a JSON value but found end of input"),
        ("[,1]", 1, 2, "expected a JSON value but found ','"),
        (#"{"a":1,}"#, 1, 8, "trailing comma in object"),
        (#"{"a" 1}"#, 1, 6, "expected ':' after an object key but found '1'"),
        (#"{"a":1 "b":2}"#, 1, 8, "expected ',' or '}' after an object member"),
        ("{a:1}", 1, 2, "expected a string key but found 'a'"),
        ("{1:1}", 1, 2, "expected a string key"),
        (#"{"a":1"#, 1, 7, "unterminated object"),
        (#"{"a":}"#, 1, 6, "expected a JSON value but found '}'"),
        (#"{"a":1,"b":2,"a":3}"#, 1, 14, "duplicate key \"a\" in object"),
        ("[1,\n 2,\n  x]", 3, 3, "unexpected 'x'"),
        ("{\n\"a\": [1,\r\n\"b\" \"c\"]}", 3, 5, "expected ',' or ']'"),
        ("\u{1}", 1, 1, "unexpected byte 0x01"),
    ])
    func errors(input: String, line: Int, column: Int, phrase: String) throws {
        let error = try #require(parseError(input), "\(input) should not parse")
        #expect(error.code == .parse)
        #expect(error.message.hasPrefix("line \(line), column \(column): "), "\(error.message)")
        #expect(error.message.contains(phrase), "\(error.message)")
    }

    @Test func invalidUTF8() throws {
        let cases: [([UInt8], Int, String)] = [
            ([0x22, 0x61, 0xFF, 0x22], 3, "invalid UTF-8 byte 0xFF"),
            ([0x22, 0x80, 0x22], 2, "invalid UTF-8 byte 0x80"),  // lone continuation byte
            ([0x22, 0xC0, 0xAF, 0x22], 2, "invalid UTF-8 byte 0xC0"),  // overlong '/'
            ([0x22, 0xE0, 0x80, 0xAF, 0x22], 2, "invalid UTF-8 sequence"),  // overlong
            ([0x22, 0xED, 0xA0, 0x80, 0x22], 2, "invalid UTF-8 sequence"),  // encoded surrogate U+D800
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 2, "invalid UTF-8 sequence"),  // above U+10FFFF
            ([0x22, 0xC3, 0x22], 2, "invalid UTF-8 sequence"),  // truncated
            ([0x22, 0xE2, 0x82], 2, "truncated UTF-8 sequence"),
            ([0x22, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0xFE, 0x22], 11, "invalid UTF-8 byte 0xFE"),
        ]
        for (bytes, column, phrase) in cases {
            do {
                _ = try JSONParser.parse(bytes)
                Issue.record("\(bytes) should not parse")
            } catch {
                #expect(error.message.hasPrefix("line 1, column \(column): \(phrase)"), "\(error.message)")
            }
        }
        // Valid multi-byte sequences at the edges of each range.
        let valid: [[UInt8]] = [[0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80],
                                [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF]]
        for seq in valid {
            let v = try JSONParser.parse([0x22] + seq + [0x22])
            #expect(Array(v.stringValue?.utf8 ?? "".utf8) == seq)
        }
    }

    @Test func writerEscapesAndSpecialDoubles() {
        #expect(text("a\"b\\c/\u{08}\u{0C}\n\r\t\u{00}\u{1F}\u{7F}é😀") == #""a\"b\\c/\b\f\n\r\t\u0000\u001f"# + "\u{7F}é😀\"")
        #expect(text(.double(3)) == "3.0")
        #expect(text(.double(-0.0)) == "-0.0")
        #expect(text(.double(1e16)) == "1e+16")
        #expect(text(.double(.nan)) == "null")
        #expect(text(.double(.infinity)) == "null")
        #expect(text(.double(-.infinity)) == "null")
        #expect(text(.int(.min)) == "-9223372036854775808")
        #expect(text(.int(.max)) == "9223372036854775807")
        #expect(text(.int(-7)) == "-7")
        #expect(text([:]) == "{}")
        #expect(text([]) == "[]")
    }

    @Test func parseEntryPointsAgree() throws {
        let s = #"{"a":[1,2.5,"é"]}"#
        let fromString = try JSONParser.parse(s)
        let fromArray = try JSONParser.parse(Array(s.utf8))
        let fromPointer = try Array(s.utf8).withUnsafeBytes { raw in
            try Result { () throws(SextantError) in try JSONParser.parse(raw) }.get()
        }
        #expect(fromString == fromArray && fromArray == fromPointer)
    }
}

// MARK: - Floats

@Suite struct JSONFloatTests {
    private func parseVector(_ bytes: [UInt8]) throws -> [Float] {
        let line = Array(#"{"vector":"#.utf8) + bytes + [UInt8(ascii: "}")]
        return try #require(JSONLinesReader.parseRecordLine(line, lineNumber: 1).vector)
    }

    private func expectBitExact(_ floats: [Float], sourceLocation: SourceLocation = #_sourceLocation) throws {
        var out: [UInt8] = []
        JSONWriter.writeFloats(floats, into: &out)
        let back = try parseVector(out)
        #expect(back.count == floats.count, sourceLocation: sourceLocation)
        var mismatches = 0
        for (a, b) in zip(floats, back) where a.bitPattern != b.bitPattern {
            mismatches += 1
            if mismatches <= 5 { Issue.record("\(a) read back as \(b)", sourceLocation: sourceLocation) }
        }
        // The writer's text also reads back exactly with strtof and Float(String).
        let text = String(decoding: out.dropFirst().dropLast(), as: UTF8.self).split(separator: ",")
        for (a, t) in zip(floats, text) {
            let viaInit = Float(t)?.bitPattern
            let viaStrtof = strtof(String(t), nil).bitPattern
            if viaInit == a.bitPattern && viaStrtof == a.bitPattern { continue }
            mismatches += 1
            if mismatches <= 5 { Issue.record("\(t) does not read back as \(a)", sourceLocation: sourceLocation) }
        }
        #expect(mismatches == 0, sourceLocation: sourceLocation)
    }

    @Test func specialValues() throws {
        var specials: [Float] = [
            0, -0.0, 1, -1, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude,
            -.leastNonzeroMagnitude, .leastNormalMagnitude, Float.leastNormalMagnitude.nextDown, .ulpOfOne, 0.1, 1e-10,
            16_777_216, 16_777_218, 3.4028235e38, Float(bitPattern: 0x007F_FFFF), .pi,
        ]
        specials += (0..<200).map { Float(bitPattern: UInt32($0)) }  // smallest subnormals
        specials += (0..<200).map { Float(bitPattern: 0x007F_FFFF - UInt32($0)) }  // largest subnormals
        specials += (0..<200).map { Float(bitPattern: 0x7F7F_FFFF - UInt32($0)) }  // largest finite
        try expectBitExact(specials)
        var out: [UInt8] = []
        JSONWriter.writeFloats([-0.0, 1, .nan, .infinity], into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "[-0.0,1.0,null,null]")
        #expect(try parseVector(Array("[-0.0]".utf8))[0].sign == .minus)
        #expect(try parseVector(Array("[-0]".utf8))[0].sign == .minus)
    }

    @Test func randomBitPatternsRoundTrip() throws {
        var rng = SplitMix64(seed: 0xF10A7)
        var batch: [Float] = []
        for _ in 0..<250 {  // 250 × 8192 ≈ 2 million
            batch.removeAll(keepingCapacity: true)
            while batch.count < 8192 {
                let f = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
                if f.isFinite { batch.append(f) }
            }
            try expectBitExact(batch)
        }
        // Every 257th subnormal.
        try expectBitExact(stride(from: UInt32(1), to: 0x0080_0000, by: 257).map { Float(bitPattern: $0) })
    }

    /// Decimal text that is not the writer's: the vector parser agrees bit for bit with `Float(String)`, also for
    /// decimals within a hair of the midpoint between two Floats (where rounding through Double would be wrong).
    @Test func decimalStringsMatchFloatInit() throws {
        var rng = SplitMix64(seed: 12345)
        var strings: [String] = []
        for i in 0..<60000 {
            switch i % 3 {
            case 0:
                var s = rng.next() & 1 == 0 ? "" : "-"
                s += String(rng.next() % 9 + 1)
                for _ in 0..<Int(rng.next() % 22) { s += String(rng.next() % 10) }
                s += "e" + String(Int(rng.next() % 90) - 60)
                if Float(s)?.isFinite == true { strings.append(s) }
            case 1:
                var f: Float
                repeat {
                    f = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0x7F7F_FFFF)
                } while f == .greatestFiniteMagnitude
                let midpoint = (Double(f) + Double(f.nextUp)) / 2  // exact
                // The midpoint, a little below and a little above it, with 17 significant digits.
                for d in [midpoint, midpoint.nextDown, midpoint.nextUp] {
                    var buffer = [CChar](repeating: 0, count: 40)
                    let n = withVaList([d]) { vsnprintf(&buffer, 40, "%.16e", $0) }
                    strings.append(String(decoding: buffer[..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self))
                }
            default:
                strings.append(String((UInt64(1) << 24) + rng.next() % (UInt64(1) << 28)))  // odd ones are midpoints
            }
        }
        strings += ["1.00000005960464477539062", "1.000000059604644775390625", "1.000000059604644775390626",
                    "16777217", "16777217.000000001", "3.4028235677973366e38", "3.4028235677973362e38",
                    "7.006492321624085e-46", "7.006492321624087e-46", "1e-50", "-1e-50"]
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        for (i, s) in strings.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += s.utf8
        }
        bytes.append(UInt8(ascii: "]"))
        let parsed = try parseVector(bytes)
        var mismatches = 0
        for (s, f) in zip(strings, parsed) where Float(s)?.bitPattern != f.bitPattern {
            mismatches += 1
            if mismatches <= 5 { Issue.record("\(s): got \(f), Float(String) gives \(Float(s) ?? .nan)") }
        }
        #expect(mismatches == 0)
    }
}

// MARK: - Record lines

@Suite struct RecordLineTests {
    @Test func allKeysAnyOrder() throws {
        let a = try record(#"{"id": 7, "vector": [1, -2.5, 3e-2], "metadata": {"k": [1, "x"]}, "document": "text"}"#)
        #expect(a.id == .int(7))
        #expect(a.vector == [1, -2.5, 0.03])
        #expect(a.metadata == ["k": [1, "x"]])
        #expect(a.document == "text")
        #expect(a.hasDocumentKey)
        let b = try record(" \t{\"document\":null,\"metadata\":null,\"vector\":[],\"id\":\"doc-1\"} \r")
        #expect(b.id == .string("doc-1"))
        #expect(b.vector == [])
        #expect(b.metadata == .null)
        #expect(b.document == nil)
        #expect(b.hasDocumentKey)
        let c = try record("{}")
        #expect(c.id == nil && c.vector == nil && c.metadata == nil && c.document == nil && !c.hasDocumentKey)
        let d = try record(#"{"metadata": 5, "id": 18446744073709551615, "vector": [ 0.5 , 1 ]}"#)
        #expect(d.id == .int(.max))
        #expect(d.metadata == .int(5))
        #expect(d.vector == [0.5, 1])
        #expect(!d.hasDocumentKey)
        #expect(try record(#"{"id":0}"#).id == .int(0))
        #expect(try record(#"{"\u0069d":"\u00e9\uD83D\uDE00"}"#).id == .string("é😀"))
        let longID = String(repeating: "é", count: 512)  // 1024 bytes
        #expect(try record("{\"id\":\"\(longID)\"}").id == .string(longID))
    }

    @Test(arguments: [
        (#"{"id": -1}"#, 8, "\"id\" must not be negative"),
        (#"{"id": 1.5}"#, 8, "\"id\" must be an integer (no fraction or exponent)"),
        (#"{"id": 1e3}"#, 8, "\"id\" must be an integer"),
        (#"{"id": true}"#, 8, "\"id\" must be a non-negative integer or a string, found 't'"),
        (#"{"id": null}"#, 8, "\"id\" must be a non-negative integer or a string"),
        (#"{"id": [1]}"#, 8, "\"id\" must be a non-negative integer or a string"),
        (#"{"id": ""}"#, 8, "\"id\" must not be an empty string"),
        (#"{"id": 18446744073709551616}"#, 8, "\"id\" is larger than 18446744073709551615"),
        (#"{"id": 007}"#, 8, "leading zeros are not allowed"),
        (#"{"id": 1, "id": 2}"#, 11, "duplicate key \"id\""),
        (#"{"metdata": {}}"#, 2, "unknown key \"metdata\""),
        (#"{"vector": [1], "Vector": [2]}"#, 17, "unknown key \"Vector\""),
        (#"{"vector": "1,2"}"#, 12, "\"vector\" must be an array of numbers, found '\"'"),
        (#"{"vector": [1, null]}"#, 16, "vector[1] must be a number, found 'n'"),
        (#"{"vector": [1, "2"]}"#, 16, "vector[1] must be a number"),
        (#"{"vector": [1, 2,]}"#, 18, "trailing comma in array"),
        (#"{"vector": [1 2]}"#, 15, "expected ',' or ']' after vector[0] but found '2'"),
        (#"{"vector": [0, 1, 2, 1e39]}"#, 22, "vector[3] is not a finite float32"),
        (#"{"vector": [-3.5e38]}"#, 13, "vector[0] is not a finite float32"),
        (#"{"vector": [NaN]}"#, 13, "vector[0] must be a number"),
        (#"{"vector": [01]}"#, 13, "leading zeros are not allowed"),
        (#"{"vector": [1, 2"#, 17, "unterminated \"vector\" array"),
        (#"{"document": 5}"#, 14, "\"document\" must be a string or null, found '5'"),
        (#"{"document": "a"} x"#, 19, "unexpected data after the record object: 'x'"),
        (#"{"metadata": {"a": 1, "a": 2}}"#, 23, "duplicate key \"a\" in object"),
        (#"{"metadata": {"a": tru}}"#, 20, "invalid literal"),
        (#"["id", 1]"#, 1, "expected a JSON object ('{') but found '['"),
        ("", 1, "expected a JSON object ('{') but found end of line"),
        (#"{"id": 1,}"#, 10, "trailing comma in object"),
        (#"{"id": 1"#, 9, "unterminated object"),
        (#"{"id" 1}"#, 7, "expected ':' after an object key"),
    ])
    func errors(input: String, column: Int, phrase: String) throws {
        let error = try #require(recordError(input, line: 12), "\(input) should not parse")
        #expect(error.code == .parse)
        #expect(error.message.hasPrefix("line 12, column \(column): "), "\(error.message)")
        #expect(error.message.contains(phrase), "\(error.message)")
    }

    @Test func idLengthLimit() throws {
        let tooLong = String(repeating: "a", count: 1025)
        let error = try #require(recordError("{\"id\":\"\(tooLong)\"}", line: 3))
        #expect(error.message == "line 3, column 7: \"id\" is 1025 UTF-8 bytes long; the limit is 1024")
    }

    @Test func vectorOfWriterOutput() throws {
        var rng = SplitMix64(seed: 3)
        let v = (0..<384).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0xBF7F_FFFF) }
        var line = Array(#"{"id":1,"vector":"#.utf8)
        JSONWriter.writeFloats(v, into: &line)
        line += Array(#","document":null}"#.utf8)
        let r = try JSONLinesReader.parseRecordLine(line, lineNumber: 1)
        #expect(r.vector?.map(\.bitPattern) == v.map(\.bitPattern))
    }
}

// MARK: - JSON Lines reader

@Suite struct JSONLinesReaderTests {
    @Test func crlfBlankLinesAndMissingFinalNewline() throws {
        let file = "\u{FEFF}{\"id\":1}\r\n\r\n   \t \n{\"id\":2}\n\n{\"id\":3}\r\n  {\"id\":4}  \n{\"id\":5}"
        for chunkSize in [1, 2, 3, 5, 7, 16, 1 << 20] {
            let lines = try readLines(Array(file.utf8), chunkSize: chunkSize)
            #expect(lines.map(\.0) == [#"{"id":1}"#, #"{"id":2}"#, #"{"id":3}"#, #"  {"id":4}  "#, #"{"id":5}"#])
            #expect(lines.map(\.1) == [1, 4, 6, 7, 8], "chunk size \(chunkSize)")
        }
        #expect(try readLines([], chunkSize: 4).isEmpty)
        #expect(try readLines(Array("\n\n \r\n".utf8), chunkSize: 4).isEmpty)
        #expect(try readLines(Array("x\r".utf8), chunkSize: 4).map(\.0) == ["x"])
    }

    @Test func chunkBoundaryInsideLines() throws {
        var rng = SplitMix64(seed: 11)
        var expected: [String] = []
        var file = ""
        for i in 0..<300 {
            let line = "{\"id\":\(i),\"document\":\"" + String(repeating: "x", count: Int(rng.next() % 200)) + "\"}"
            expected.append(line)
            file += line + (i % 3 == 0 ? "\r\n" : "\n")
        }
        for chunkSize in [13, 64, 100, 4096] {
            let lines = try readLines(Array(file.utf8), chunkSize: chunkSize)
            #expect(lines.map(\.0) == expected, "chunk size \(chunkSize)")
            #expect(lines.map(\.1) == Array(1...300))
        }
    }

    @Test func fiveMegabyteLine() throws {
        let big = "{\"id\":\"big\",\"document\":\"" + String(repeating: "0123456789", count: 500_000) + "\"}"
        let file = "{\"id\":1}\n" + big + "\n{\"id\":3}"
        try withTempFile(Array(file.utf8)) { path in
            let reader = try JSONLinesReader(path: path)
            var records: [(ParsedRecordLine, Int)] = []
            try reader.forEachRecord { r, n in
                records.append((r, n))
                return true
            }
            #expect(records.map(\.1) == [1, 2, 3])
            #expect(records[1].0.id == .string("big"))
            #expect(records[1].0.document?.utf8.count == 5_000_000)
            #expect(records[2].0.id == .int(3))
        }
    }

    @Test func stopAndContinueAndFileDescriptor() throws {
        let file = (1...10).map { "{\"id\":\($0)}" }.joined(separator: "\n") + "\n"
        try withTempFile(Array(file.utf8)) { path in
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            let reader = JSONLinesReader(fileDescriptor: fd, chunkSize: 8)
            var seen: [Int] = []
            try reader.forEachLine { _, n in
                seen.append(n)
                return n < 4
            }
            #expect(seen == [1, 2, 3, 4])
            #expect(reader.lineNumber == 4)
            try reader.forEachRecord { r, n in
                if case .int(let id) = r.id { #expect(Int(id) == n) }
                seen.append(n)
                return true
            }
            #expect(seen == Array(1...4) + Array(5...10))
        }
    }

    @Test func parseErrorsNameTheLine() throws {
        let file = "{\"id\":1}\n\n{\"id\":2, \"metdata\":{}}\n"
        try withTempFile(Array(file.utf8)) { path in
            let reader = try JSONLinesReader(path: path)
            do {
                try reader.forEachRecord { _, _ in true }
                Issue.record("should have thrown")
            } catch let error as SextantError {
                #expect(error.code == .parse)
                #expect(error.message.hasPrefix("line 3, column 10: unknown key \"metdata\""), "\(error.message)")
            }
        }
    }

    @Test func missingFile() throws {
        do {
            _ = try JSONLinesReader(path: "/nonexistent/sextant/records.jsonl")
            Issue.record("should have thrown")
        } catch {
            #expect(error.code == .notFound)
            #expect(error.message.contains("/nonexistent/sextant/records.jsonl"))
        }
    }
}
