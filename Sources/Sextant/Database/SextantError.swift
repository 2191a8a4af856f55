// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// The one error type Sextant throws.
///
/// A ``Code`` says what kind of failure it was (match on it with `catch let e as SextantError where e.code == .notFound`
/// or `catch SextantError.notFound`); ``message`` says what was wrong and where, in words meant for a person.
/// Messages never contain vector values or metadata payloads. A message is one line of printable text:
/// user input in it (names, ids, paths) is shown through ``quoted(_:limit:)``, and whatever control or
/// non-printable characters reach a message anyway are escaped when the error is made, so printing a
/// message can never move a terminal's cursor, change its colours or forge another line.
public struct SextantError: Error, Sendable, CustomStringConvertible {
    /// A category of failure. New codes may be added in a minor release: always keep a default branch.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: String {
            case invalidArgument, dimensionMismatch, invalidVector, invalidName, notFound, alreadyExists
            case corrupt, unsupportedVersion, io, diskFull, locked, closed, readOnly, parse, cancelled
        }
        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// An argument is out of range or inconsistent (bad limit, duplicate id in a batch, …).
        public static var invalidArgument: Self { Self(.invalidArgument) }
        /// A vector's length differs from the collection's dimension.
        public static var dimensionMismatch: Self { Self(.dimensionMismatch) }
        /// A vector holds NaN or an infinity, is empty, or is all zeros under the cosine metric.
        public static var invalidVector: Self { Self(.invalidVector) }
        /// A collection or snapshot name is not allowed.
        public static var invalidName: Self { Self(.invalidName) }
        /// A collection, record or file does not exist.
        public static var notFound: Self { Self(.notFound) }
        /// A collection with this name already exists.
        public static var alreadyExists: Self { Self(.alreadyExists) }
        /// A file failed its checksum or its structure is inconsistent. The message names file and offset.
        public static var corrupt: Self { Self(.corrupt) }
        /// A file was written by a newer (or unknown) format version.
        public static var unsupportedVersion: Self { Self(.unsupportedVersion) }
        /// The operating system reported an I/O failure.
        public static var io: Self { Self(.io) }
        /// The disk is full (ENOSPC / EDQUOT). Nothing of the failed operation was applied.
        public static var diskFull: Self { Self(.diskFull) }
        /// Another process holds the database's write lock.
        public static var locked: Self { Self(.locked) }
        /// The database or collection was closed or dropped.
        public static var closed: Self { Self(.closed) }
        /// The collection refuses writes after an unrecoverable I/O error (e.g. a failed fsync). Reopen it.
        public static var readOnly: Self { Self(.readOnly) }
        /// Input text (JSON, JSON Lines, NPY) is malformed. The message names the line or offset.
        public static var parse: Self { Self(.parse) }
        /// The operation was cancelled by its caller.
        public static var cancelled: Self { Self(.cancelled) }

        public var description: String { wrapped.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?
    /// Where in Sextant the error was raised (for bug reports).
    public var location: String

    public init(
        _ code: Code, _ message: String, cause: (any Error)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = Self.bounded(Self.escapingNonPrintables(message))
        self.cause = cause
        self.location = "\(file):\(line)"
    }

    public var description: String { message }


    public static var invalidArgument: Code { .invalidArgument }
    public static var dimensionMismatch: Code { .dimensionMismatch }
    public static var invalidVector: Code { .invalidVector }
    public static var notFound: Code { .notFound }
    public static var alreadyExists: Code { .alreadyExists }
    public static var corrupt: Code { .corrupt }
    public static var locked: Code { .locked }
    public static var diskFull: Code { .diskFull }
    public static var parse: Code { .parse }
}

extension SextantError.Code {
    /// Lets callers write `catch SextantError.notFound { … }`.
    public static func ~= (code: SextantError.Code, error: any Error) -> Bool {
        (error as? SextantError)?.code == code
    }
}

extension SextantError {
    /// `text` in single quotes, as error messages show user input (a name, an id, a path): control,
    /// format (bidirectional overrides, zero-width characters) and other non-printable characters are
    /// escaped (`\n`, `\t`, `\u{1B}`), as are `\` and `'`, and input longer than `limit` unicode scalars is cut
    /// there, with its full length said: `'aaaa…' (1048576 characters)`.
    public static func quoted(_ text: String, limit: Int = Limits.maxQuotedCharacters) -> String {
        var out = "'"
        var count = 0
        var cut = false
        for u in text.unicodeScalars {
            if count == limit {
                cut = true
                break
            }
            count += 1
            if u == "\\" || u == "'" {
                out += "\\"
                out.unicodeScalars.append(u)
            } else {
                appendEscaped(u, to: &out)
            }
        }
        if cut { return out + "…' (\(text.unicodeScalars.count) characters)" }
        return out + "'"
    }

    /// The longest message kept whole, in unicode scalars. Longer ones (only possible when a huge input is
    /// echoed unquoted) keep their start and end, which say what and where, and drop the middle.
    public static let maxMessageCharacters = 2000

    private static func bounded(_ message: String) -> String {
        let scalars = message.unicodeScalars
        guard scalars.count > maxMessageCharacters else { return message }
        let head = scalars.prefix(1200), tail = scalars.suffix(600)
        var out = String(String.UnicodeScalarView(head))
        out += "…[\(scalars.count - head.count - tail.count) characters omitted]…"
        out += String(String.UnicodeScalarView(tail))
        return out
    }

    /// `text` with control and other non-printable characters escaped (`\n`, `\u{1B}`); everything else,
    /// non-ASCII letters included, unchanged. Every message passes through it.
    public static func escapingNonPrintables(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for u in text.unicodeScalars { appendEscaped(u, to: &out) }
        return out
    }

    private static func appendEscaped(_ u: Unicode.Scalar, to out: inout String) {
        if u.value >= 0x20 && u.value < 0x7F {
            out.unicodeScalars.append(u)
            return
        }
        switch u {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\0": out += "\\0"
        default:
            if isNonPrintable(u) {
                out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }

    private static func isNonPrintable(_ u: Unicode.Scalar) -> Bool {
        switch u.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned: return true
        default: return false
        }
    }
}
