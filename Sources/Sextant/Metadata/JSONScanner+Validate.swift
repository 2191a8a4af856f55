// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension JSONScanner {
    /// Checks one value by exactly the rules of `parseValue` (grammar, UTF-8, escapes, number range, depth,
    /// duplicate keys) without building it.
    ///
    /// Bulk import keeps a record's metadata as the bytes it arrived in once they are known to be valid
    /// JSON, instead of building a `JSONValue` tree and writing it out again — two thirds of the parse time
    /// of a typical records file. Rare shapes (escaped keys, very wide objects) fall back to the full parser
    /// for that object, so the two can never disagree.
    mutating func validateValue(depth: Int) throws(SextantError) {
        skipWhitespace()
        guard pos < end else { _ = try parseValue(depth: depth); return }
        switch bytes[pos] {
        case ASCII.openBrace: try validateObject(depth: depth + 1)
        case ASCII.openBracket: try validateArray(depth: depth + 1)
        case ASCII.quote: try validateString()
        case ASCII.lowerT: try expectLiteral("true")
        case ASCII.lowerF: try expectLiteral("false")
        case ASCII.lowerN: try expectLiteral("null")
        default: _ = try parseValue(depth: depth)  // numbers, and the error messages for everything else
        }
    }

    private mutating func validateString() throws(SextantError) {
        let start = pos
        if try scanString().escaped {
            pos = start
            _ = try parseString()  // validates the escapes while decoding them
        }
    }

    private mutating func validateArray(depth: Int) throws(SextantError) {
        let start = pos
        try enterContainer(depth: depth)
        skipWhitespace()
        if peek == ASCII.closeBracket {
            pos += 1
            return
        }
        while true {
            try validateValue(depth: depth)
            skipWhitespace()
            guard pos < end, bytes[pos] == ASCII.comma || bytes[pos] == ASCII.closeBracket else {
                pos = start
                _ = try parseArray(depth: depth)  // throws the parser's own message
                return
            }
            pos += 1
            if bytes[pos - 1] == ASCII.closeBracket { return }
            skipWhitespace()
            if peek == ASCII.closeBracket { throw error("trailing comma in array", at: pos) }
        }
    }

    private mutating func validateObject(depth: Int) throws(SextantError) {
        let start = pos
        try enterContainer(depth: depth)
        skipWhitespace()
        if peek == ASCII.closeBrace {
            pos += 1
            return
        }
        // Raw byte ranges of the keys seen so far, for the duplicate check.
        var keys: [(start: Int, end: Int)] = []
        while true {
            let keyStart = pos
            guard peek == ASCII.quote else {
                pos = start
                _ = try parseObject(depth: depth)
                return
            }
            let key = try scanString()
            if key.escaped || keys.count >= 64 {
                pos = start
                _ = try parseObject(depth: depth)
                return
            }
            try expectColon()
            // Like the parser: the value first (its errors win), then the duplicate check.
            try validateValue(depth: depth)
            let length = key.end - key.start
            for k in keys where k.end - k.start == length
                && (length == 0 || memcmp(bytes.baseAddress! + k.start, bytes.baseAddress! + key.start, length) == 0)
            {
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[key.start..<key.end]), as: UTF8.self)
                throw error("duplicate key \(quotedForMessage(name)) in object", at: keyStart)
            }
            keys.append((key.start, key.end))
            skipWhitespace()
            guard pos < end, bytes[pos] == ASCII.comma || bytes[pos] == ASCII.closeBrace else {
                pos = start
                _ = try parseObject(depth: depth)
                return
            }
            pos += 1
            if bytes[pos - 1] == ASCII.closeBrace { return }
            skipWhitespace()
        }
    }
}
