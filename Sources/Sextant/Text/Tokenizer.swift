// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// Splits text into words for full-text matching and BM25.
///
/// A word is a maximal run of letters, marks and digits (Unicode general categories L*, M* and N*, so
/// "naïve", "東京" and "x86_64"'s parts are words); everything else separates words. Words are lowercased
/// (Unicode full case folding through `String.lowercased()`), and words in `stopWords` are dropped.
public struct Tokenizer: Sendable, Hashable {
    /// Lowercased words to drop.
    public var stopWords: Set<String>

    public init(stopWords: Set<String> = []) {
        self.stopWords = stopWords
    }

    /// No stop words.
    public static let `default` = Tokenizer()

    /// A short English list (articles, pronouns, auxiliaries, prepositions), for ``init(stopWords:)``.
    public static let englishStopWords: Set<String> = [
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no",
        "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this",
        "to", "was", "will", "with",
    ]

    /// The words of `text`, in order, repeats kept.
    public func tokens(_ text: String) -> [String] {
        var out: [String] = []
        forEachToken(text) { out.append($0) }
        return out
    }

    /// Calls `body` with each word of `text`, in order.
    public func forEachToken(_ text: String, _ body: (String) -> Void) {
        var word = String.UnicodeScalarView()
        var asciiOnly = true
        func emit() {
            if word.isEmpty { return }
            let raw = String(word)
            let w = asciiOnly ? Self.asciiLower(raw) : raw.lowercased()
            word.removeAll(keepingCapacity: true)
            asciiOnly = true
            if stopWords.isEmpty || !stopWords.contains(w) { body(w) }
        }
        for scalar in text.unicodeScalars {
            let v = scalar.value
            if v < 0x80 {
                // ASCII fast path: letters and digits.
                if (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) {
                    word.append(scalar)
                } else {
                    emit()
                }
                continue
            }
            if Self.isWordScalar(scalar) {
                word.append(scalar)
                asciiOnly = false
            } else {
                emit()
            }
        }
        emit()
    }

    /// Calls `body` with the UTF-8 bytes of each word of `text` (valid only during the call): the same
    /// words as ``forEachToken(_:_:)``. ASCII text, the common case, is split and lowercased byte by byte
    /// without making strings; text with other characters takes the Unicode path.
    package func forEachToken(utf8 text: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var ascii = true
        for b in text where b >= 0x80 {
            ascii = false
            break
        }
        guard ascii, !text.isEmpty else {
            if text.isEmpty { return }
            forEachToken(String(decoding: text, as: UTF8.self)) { w in
                var w = w
                w.withUTF8 { body(UnsafeRawBufferPointer($0)) }
            }
            return
        }
        withUnsafeTemporaryAllocation(byteCount: text.count, alignment: 1) { scratch in
            var n = 0
            func emit() {
                if n == 0 { return }
                let w = UnsafeRawBufferPointer(rebasing: scratch[0..<n])
                n = 0
                if stopWords.isEmpty || !stopWords.contains(String(decoding: w, as: UTF8.self)) { body(w) }
            }
            for b in text {
                if (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) {
                    scratch[n] = b
                    n += 1
                } else if b >= 0x41 && b <= 0x5A {
                    scratch[n] = b | 0x20
                    n += 1
                } else {
                    emit()
                }
            }
            emit()
        }
    }

    private static func isWordScalar(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
            .nonspacingMark, .spacingMark, .enclosingMark,
            .decimalNumber, .letterNumber, .otherNumber:
            return true
        default:
            return false
        }
    }

    private static func asciiLower(_ s: String) -> String {
        var bytes = Array(s.utf8)
        var changed = false
        for i in bytes.indices where bytes[i] >= 0x41 && bytes[i] <= 0x5A {
            bytes[i] |= 0x20
            changed = true
        }
        return changed ? String(decoding: bytes, as: UTF8.self) : s
    }
}
