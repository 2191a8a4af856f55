// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Synchronization

/// The documents' postings of one memtable, built on first use and extended as rows are appended (rows
/// never change once written, so what is indexed stays valid).
package final class MemtableTextIndex: Sendable {
    package struct Contents: Sendable {
        var indexedRows = 0
        /// term → (row, tf), rows ascending.
        var postings: [String: [(row: UInt32, tf: UInt32)]] = [:]
        var docLengths: [UInt32] = []
        var hasDocument: [Bool] = []
    }
    package let contents = Locked(Contents())

    package init() {}

    /// Indexes rows up to `count` (documents read from `documents`, a snapshot taken under the state lock),
    /// then runs `body` on the contents.
    package func withIndex<R>(upTo count: Int, documents: [String?], tokenizer: Tokenizer, _ body: (Contents) -> R) -> R {
        contents.withLock { c in
            while c.indexedRows < count {
                let row = c.indexedRows
                var length: UInt32 = 0
                if let d = documents[row] {
                    var tf: [String: UInt32] = [:]
                    tokenizer.forEachToken(d) { w in
                        tf[w, default: 0] += 1
                        length += 1
                    }
                    for (w, n) in tf { c.postings[w, default: []].append((UInt32(row), n)) }
                }
                c.docLengths.append(length)
                c.hasDocument.append(documents[row] != nil)
                c.indexedRows += 1
            }
            return body(c)
        }
    }
}
