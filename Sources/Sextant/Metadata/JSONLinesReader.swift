// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a JSON Lines file (one JSON value per line) from a file descriptor or a path, a line at a time.
///
/// The reader reads in chunks of ``defaultChunkSize`` bytes and hands out each line as bytes in its own buffer, so
/// memory stays bounded by the chunk size and the longest line (the buffer doubles when a line does not fit).
/// Lines end at `\n`; a `\r` before it is dropped, so `\r\n` files read the same. The last line needs no newline.
/// Blank lines (only spaces, tabs and `\r`) are skipped but counted, so line numbers match what an editor shows.
/// A UTF-8 byte order mark at the very start of the input is skipped.
///
/// Not thread-safe: use one reader from one thread at a time.
public final class JSONLinesReader {
    /// The size of each `read`: 1 MiB.
    public static let defaultChunkSize = 1 << 20

    private let fd: Int32
    private let ownsDescriptor: Bool
    private let name: String
    /// Where bytes come from when not from `fd` (a decompressing reader).
    private let source: ((UnsafeMutableRawBufferPointer) throws(SextantError) -> Int)?
    private let chunkSize: Int
    private var buffer: UnsafeMutableRawBufferPointer
    /// Unconsumed bytes are `buffer[start..<filled]`; `buffer[start..<scanned]` is known to hold no newline.
    private var start = 0
    private var filled = 0
    private var scanned = 0
    private var atEOF = false
    private var atFileStart = true

    /// The number of the last line handed out (or skipped as blank); 0 before the first.
    public private(set) var lineNumber = 0

    /// Reads from an open file descriptor, from its current offset. The reader does not close it.
    /// - Parameter chunkSize: bytes per `read` (at least 1); the default suits files of any size.
    public init(fileDescriptor: Int32, chunkSize: Int = JSONLinesReader.defaultChunkSize) {
        self.fd = fileDescriptor
        self.ownsDescriptor = false
        self.name = "file descriptor \(fileDescriptor)"
        self.source = nil
        self.chunkSize = max(1, chunkSize)
        self.buffer = .allocate(byteCount: self.chunkSize, alignment: 16)
    }

    /// Opens the file at `path` for reading; the reader closes it when it is deallocated.
    /// - Throws: `SextantError` `.notFound` if the file does not exist, `.io` if it cannot be opened.
    public init(path: String, chunkSize: Int = JSONLinesReader.defaultChunkSize) throws(SextantError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw SextantError(
                code == ENOENT ? .notFound : .io, "cannot open \(path): \(String(cString: strerror(code)))")
        }
        self.fd = fd
        self.ownsDescriptor = true
        self.name = path
        self.source = nil
        self.chunkSize = max(1, chunkSize)
        self.buffer = .allocate(byteCount: self.chunkSize, alignment: 16)
    }

    /// Reads what `read` returns (it fills a buffer and returns the count, 0 at the end): for content that
    /// needs decoding on the way, such as a compressed file (``ContentReader``).
    package init(name: String, chunkSize: Int = JSONLinesReader.defaultChunkSize, read: @escaping (UnsafeMutableRawBufferPointer) throws(SextantError) -> Int) {
        self.fd = -1
        self.ownsDescriptor = false
        self.name = name
        self.source = read
        self.chunkSize = max(1, chunkSize)
        self.buffer = .allocate(byteCount: self.chunkSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        if ownsDescriptor { close(fd) }
    }

    /// Calls `body` with each non-blank line (without its `\n` or `\r\n`) and its 1-based line number, until the
    /// input ends or `body` returns false. The bytes are valid only during the call. Calling it again after a
    /// `false` continues with the next line.
    /// - Throws: what `body` throws (reading stops there), or `SextantError(.io, …)` if `read` fails.
    public func forEachLine(_ body: (UnsafeRawBufferPointer, Int) throws -> Bool) throws {
        while let line = try nextLine() {
            if try !body(line, lineNumber) { return }
        }
    }

    /// Parses each non-blank line with ``parseRecordLine(_:lineNumber:)`` and calls `body` with the record and its
    /// line number, until the input ends or `body` returns false.
    /// - Throws: the first parse error (`SextantError(.parse, "line N, column C: …")`), what `body` throws,
    ///   or `SextantError(.io, …)`.
    public func forEachRecord(_ body: (ParsedRecordLine, Int) throws -> Bool) throws {
        while let line = try nextLine() {
            let record = try Self.parseRecordLine(line, lineNumber: lineNumber)
            if try !body(record, lineNumber) { return }
        }
    }

    /// The next non-blank line, valid until the next call; nil at the end of the input.
    private func nextLine() throws(SextantError) -> UnsafeRawBufferPointer? {
        while true {
            guard let base = buffer.baseAddress else { return nil }  // never nil: capacity ≥ 1
            if scanned < filled, let hit = memchr(base + scanned, Int32(ASCII.lf), filled - scanned) {
                let newline = base.distance(to: hit)
                let line = takeLine(upTo: newline)
                start = newline + 1
                scanned = start
                if let line { return line }
                continue
            }
            scanned = filled
            if atEOF {
                guard start < filled else { return nil }
                let line = takeLine(upTo: filled)
                start = filled
                if let line { return line }
                return nil
            }
            try fill()
        }
    }

    /// Counts the line `start..<end` and returns it without a trailing `\r` (and a leading BOM on the
    /// first line), or nil when it is blank.
    private func takeLine(upTo end: Int) -> UnsafeRawBufferPointer? {
        lineNumber += 1
        var lineStart = start
        var lineEnd = end
        if atFileStart {
            atFileStart = false
            if lineEnd - lineStart >= 3, buffer[lineStart] == 0xEF, buffer[lineStart + 1] == 0xBB,
                buffer[lineStart + 2] == 0xBF
            {
                lineStart += 3
            }
        }
        if lineEnd > lineStart, buffer[lineEnd - 1] == ASCII.cr { lineEnd -= 1 }
        var i = lineStart
        while i < lineEnd {
            let b = buffer[i]
            guard b == ASCII.space || b == ASCII.tab || b == ASCII.cr else { break }
            i += 1
        }
        if i == lineEnd { return nil }
        return UnsafeRawBufferPointer(rebasing: buffer[lineStart..<lineEnd])
    }

    /// Reads more bytes after `filled`, first moving the unconsumed tail to the front, growing the buffer when a
    /// line fills it. Sets `atEOF` at the end of the input.
    private func fill() throws(SextantError) {
        if start > 0 {
            let tail = filled - start
            if tail > 0, let base = buffer.baseAddress { memmove(base, base + start, tail) }
            filled = tail
            scanned -= start
            start = 0
        }
        if buffer.count - filled < chunkSize / 2 || filled == buffer.count {
            let grown = UnsafeMutableRawBufferPointer.allocate(
                byteCount: max(buffer.count * 2, filled + chunkSize), alignment: 16)
            if filled > 0 { grown.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[..<filled])) }
            buffer.deallocate()
            buffer = grown
        }
        if let source {
            let n = try source(UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if n == 0 { atEOF = true } else { filled += n }
            return
        }
        while true {
            guard let base = buffer.baseAddress else { return }
            let n = read(fd, base + filled, buffer.count - filled)
            if n > 0 {
                filled += n
                return
            }
            if n == 0 {
                atEOF = true
                return
            }
            let code = errno
            if code == EINTR { continue }
            throw SextantError(.io, "reading \(name): \(String(cString: strerror(code)))")
        }
    }
}

// MARK: - Record lines

/// One line of a record file, as read by ``JSONLinesReader/parseRecordLine(_:lineNumber:)``: every field is nil
/// when its key is absent. The caller decides which keys it requires.
public struct ParsedRecordLine: Sendable {
    /// `"id"`: a non-negative integer → `.int`, a string → `.string`.
    public var id: RecordID?
    /// `"vector"`: the numbers, each rounded to the nearest `Float` (all finite; may be empty).
    public var vector: [Float]?
    /// `"metadata"`: any JSON value, `null` included (then `.null`, not nil).
    public var metadata: JSONValue?
    /// `"document"`: the text; nil if the key is absent or `null` (tell them apart with ``hasDocumentKey``).
    public var document: String?
    /// Whether the line has a `"document"` key (`"document": null` included).
    public var hasDocumentKey: Bool
    /// The metadata's original JSON bytes, set instead of ``metadata`` by the bulk-import parser.
    package var metadataJSON: [UInt8]?

    public init(
        id: RecordID? = nil, vector: [Float]? = nil, metadata: JSONValue? = nil, document: String? = nil,
        hasDocumentKey: Bool = false
    ) {
        self.id = id
        self.vector = vector
        self.metadata = metadata
        self.document = document
        self.hasDocumentKey = hasDocumentKey || document != nil
    }
}

extension JSONLinesReader {
    /// Parses one record line: a JSON object with the optional keys `id`, `vector`, `metadata` and `document`, in
    /// any order, and nothing else.
    ///
    /// - `id`: a JSON integer in `0...UInt64.max` (no sign, fraction or exponent) → `.int`, or a string of
    ///   1...1024 UTF-8 bytes → `.string`.
    /// - `vector`: an array of numbers, each converted to the nearest `Float` (bit-identical to `Float(String)`).
    /// - `metadata`: any JSON value, parsed as by ``JSONParser`` (duplicate keys, depth over 128 are errors).
    /// - `document`: a string or `null`.
    ///
    /// - Throws: `SextantError(.parse, "line N, column C: …")` (C is the 1-based byte offset in the line) for
    ///   malformed JSON, anything after the object, a key other than those four (the message names it), a key
    ///   given twice, an `id` that is negative, fractional, too large, empty, too long or not a number or string,
    ///   a `vector` that is not an array of numbers or has an element that is not a finite `Float`
    ///   ("vector[3] is not a finite float32", e.g. `1e39`), and a `document` that is neither string nor null.
    public static func parseRecordLine(
        _ line: UnsafeRawBufferPointer, lineNumber: Int
    ) throws(SextantError) -> ParsedRecordLine {
        var s = JSONScanner(line, lineNumber: lineNumber)
        return try s.parseRecord(rawMetadata: false)
    }

    /// Like ``parseRecordLine(_:lineNumber:)``, but the metadata is validated (by the same rules) and kept
    /// as its original bytes in ``ParsedRecordLine/metadataJSON`` instead of being built as a tree: the
    /// fast path of bulk import, which stores metadata as JSON text anyway.
    package static func parseRecordLineKeepingMetadataBytes(
        _ line: UnsafeRawBufferPointer, lineNumber: Int
    ) throws(SextantError) -> ParsedRecordLine {
        var s = JSONScanner(line, lineNumber: lineNumber)
        return try s.parseRecord(rawMetadata: true)
    }

    /// Parses one record line from bytes; same rules and errors as the `UnsafeRawBufferPointer` overload.
    public static func parseRecordLine(_ line: [UInt8], lineNumber: Int) throws(SextantError) -> ParsedRecordLine {
        try line.withUnsafeBytes { raw in
            Result { () throws(SextantError) in try parseRecordLine(raw, lineNumber: lineNumber) }
        }.get()
    }

    /// Parses one record line from a string; same rules and errors as the `UnsafeRawBufferPointer` overload.
    public static func parseRecordLine(_ line: String, lineNumber: Int) throws(SextantError) -> ParsedRecordLine {
        var line = line
        return try line.withUTF8 { utf8 in
            Result { () throws(SextantError) in
                try parseRecordLine(UnsafeRawBufferPointer(utf8), lineNumber: lineNumber)
            }
        }.get()
    }
}

extension JSONScanner {
    private enum RecordKey: UInt8 {
        case id = 1, vector = 2, metadata = 4, document = 8
        var name: String {
            switch self {
            case .id: "id"
            case .vector: "vector"
            case .metadata: "metadata"
            case .document: "document"
            }
        }
    }

    /// Parses `{ "id": …, "vector": …, "metadata": …, "document": … }` followed only by whitespace.
    mutating func parseRecord(rawMetadata: Bool) throws(SextantError) -> ParsedRecordLine {
        var record = ParsedRecordLine()
        skipWhitespace()
        guard peek == ASCII.openBrace else {
            throw error("expected a JSON object ('{') but found \(describe(at: pos))", at: pos)
        }
        pos += 1
        skipWhitespace()
        var seen: UInt8 = 0
        if peek == ASCII.closeBrace {
            pos += 1
        } else {
            while true {
                let keyStart = pos
                let key = try parseRecordKey()
                if seen & key.rawValue != 0 { throw error("duplicate key \"\(key.name)\"", at: keyStart) }
                seen |= key.rawValue
                try expectColon()
                skipWhitespace()
                switch key {
                case .id: record.id = try parseRecordID()
                case .vector: record.vector = try parseVector()
                case .metadata:
                    if rawMetadata {
                        let start = pos
                        try validateValue(depth: 0)
                        record.metadataJSON = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<pos]))
                    } else {
                        record.metadata = try parseValue(depth: 0)
                    }
                case .document:
                    record.hasDocumentKey = true
                    if peek == ASCII.quote {
                        record.document = try parseString()
                    } else if peek == ASCII.lowerN {
                        try expectLiteral("null")
                    } else {
                        throw error("\"document\" must be a string or null, found \(describe(at: pos))", at: pos)
                    }
                }
                skipWhitespace()
                guard pos < end else {
                    throw error("unterminated object: expected ',' or '}' but found \(describe(at: pos))", at: pos)
                }
                let b = bytes[pos]
                pos += 1
                if b == ASCII.closeBrace { break }
                if b != ASCII.comma {
                    throw error(
                        "expected ',' or '}' after an object member but found \(describe(at: pos - 1))", at: pos - 1)
                }
                skipWhitespace()
            }
        }
        skipWhitespace()
        if pos < end { throw error("unexpected data after the record object: \(describe(at: pos))", at: pos) }
        return record
    }

    /// Parses a key of the record object; anything but the four known keys is an error naming it.
    private mutating func parseRecordKey() throws(SextantError) -> RecordKey {
        guard peek == ASCII.quote else {
            if peek == ASCII.closeBrace { throw error("trailing comma in object", at: pos) }
            throw error("expected a string key but found \(describe(at: pos))", at: pos)
        }
        let keyStart = pos
        let (start, stop, escaped) = try scanString()
        let key: String
        if escaped {
            key = try decodeEscaped(start: start, end: stop)
        } else {
            let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<stop])
            if let known = Self.recordKey(raw) { return known }
            key = String(decoding: raw, as: UTF8.self)
        }
        if let known = key.utf8.withContiguousStorageIfAvailable({ Self.recordKey(UnsafeRawBufferPointer($0)) }) ?? nil {
            return known
        }
        throw error(
            "unknown key \(quotedForMessage(key)) "
                + "(a record line has only \"id\", \"vector\", \"metadata\" and \"document\")",
            at: keyStart)
    }

    private static func recordKey(_ raw: UnsafeRawBufferPointer) -> RecordKey? {
        func equals(_ s: StaticString) -> Bool {
            guard raw.count == s.utf8CodeUnitCount, let base = raw.baseAddress else { return false }
            return memcmp(base, s.utf8Start, raw.count) == 0
        }
        switch raw.count {
        case 2: return equals("id") ? .id : nil
        case 6: return equals("vector") ? .vector : nil
        case 8: return equals("metadata") ? .metadata : equals("document") ? .document : nil
        default: return nil
        }
    }

    /// Parses the value of `"id"`: an integer in `0...UInt64.max` or a string of 1...1024 UTF-8 bytes.
    private mutating func parseRecordID() throws(SextantError) -> RecordID {
        let idStart = pos
        guard let b = peek else { throw error("expected a value for \"id\" but found end of line", at: pos) }
        if b == ASCII.quote {
            let (start, stop, escaped) = try scanString()
            let s =
                escaped
                ? try decodeEscaped(start: start, end: stop)
                : String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<stop]), as: UTF8.self)
            let length = s.utf8.count
            if length == 0 { throw error("\"id\" must not be an empty string", at: idStart) }
            if length > RecordID.maxStringBytes {
                throw error("\"id\" is \(length) UTF-8 bytes long; the limit is \(RecordID.maxStringBytes)", at: idStart)
            }
            return .string(s)
        }
        if b == ASCII.minus || Self.isDigit(b) {
            // Validate the token as a JSON number first, so that `-x` and `01` get the usual messages.
            let n = try scanNumber()
            if n.negative { throw error("\"id\" must not be negative", at: idStart) }
            if !n.isInteger { throw error("\"id\" must be an integer (no fraction or exponent)", at: idStart) }
            var value: UInt64 = 0
            for i in idStart..<pos {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(bytes[i] - ASCII.zero))
                if o1 || o2 { throw error("\"id\" is larger than \(UInt64.max)", at: idStart) }
                value = sum
            }
            return .int(value)
        }
        throw error("\"id\" must be a non-negative integer or a string, found \(describe(at: pos))", at: pos)
    }

    /// Parses the value of `"vector"`: `[` numbers `]` straight into `[Float]`.
    private mutating func parseVector() throws(SextantError) -> [Float] {
        guard peek == ASCII.openBracket else {
            throw error("\"vector\" must be an array of numbers, found \(describe(at: pos))", at: pos)
        }
        pos += 1
        skipWhitespace()
        if peek == ASCII.closeBracket {
            pos += 1
            return []
        }
        // Every element takes at least two bytes ("0,"), which bounds the count by the rest of the line.
        let bound = (end - pos) / 2 + 1
        return try withUnsafeTemporaryAllocation(of: Float.self, capacity: bound) { floats in
            Result { () throws(SextantError) -> [Float] in
                var count = 0
                while true {
                    guard let b = peek, b == ASCII.minus || Self.isDigit(b) else {
                        if peek == ASCII.closeBracket, count > 0 { throw error("trailing comma in array", at: pos) }
                        throw error("vector[\(count)] must be a number, found \(describe(at: pos))", at: pos)
                    }
                    let elementStart = pos
                    let f = try parseFloat32()
                    if !f.isFinite { throw error("vector[\(count)] is not a finite float32", at: elementStart) }
                    floats[count] = f
                    count += 1
                    // Fast path: the separator follows the number directly.
                    if pos < end && bytes[pos] == ASCII.comma {
                        pos += 1
                        if pos < end, bytes[pos] == ASCII.minus || Self.isDigit(bytes[pos]) { continue }
                        skipWhitespace()
                        continue
                    }
                    skipWhitespace()
                    guard pos < end else {
                        throw error("unterminated \"vector\" array: expected ',' or ']' but found end of line", at: pos)
                    }
                    let c = bytes[pos]
                    pos += 1
                    if c == ASCII.closeBracket { break }
                    if c != ASCII.comma {
                        throw error(
                            "expected ',' or ']' after vector[\(count - 1)] but found \(describe(at: pos - 1))",
                            at: pos - 1)
                    }
                    skipWhitespace()
                }
                return Array(UnsafeBufferPointer(rebasing: floats[..<count]))
            }
        }.get()
    }
}
