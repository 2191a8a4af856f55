// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Synchronization

extension VectorCollection {
    /// The payload fields this collection indexes.
    public var payloadIndexes: [PayloadIndexSpec] {
        state.withLock { $0.payloadSpecs }
    }

    /// Indexes a metadata field, so filters on it are answered from the index instead of reading each
    /// record's metadata. Returns once every segment's index covers the field (new segments get it as
    /// they are written). A key has at most one index; creating it again with the same type is a no-op.
    ///
    /// Keys use the filter syntax: dots reach into objects, `[]` into arrays (`"tags"`, `"meta.lang"`).
    /// - Throws: ``SextantError/Code/invalidArgument`` for a malformed key, or when the key already has an
    ///   index of another type (drop it first).
    public func createPayloadIndex(_ key: String, type: PayloadIndexType) throws(SextantError) {
        do { _ = try KeyPath(key) } catch { throw SextantError(.invalidArgument, "index key: \(error.message)") }
        let spec = PayloadIndexSpec(key: key, type: type)
        let current = try state.withLock { (s) throws(SextantError) -> [PayloadIndexSpec] in
            if s.closed { throw SextantError(.closed, "collection '\(name)' is closed") }
            return s.payloadSpecs
        }
        if current.contains(spec) { return }
        if let other = current.first(where: { $0.key == key }) {
            throw SextantError(.invalidArgument, "field '\(key)' already has a \(other.type.rawValue) index; drop it before creating a \(type.rawValue) index")
        }
        try setPayloadSpecs(current + [spec])
    }

    /// Stops indexing a field (filters on it keep working, reading each record's metadata).
    /// - Throws: ``SextantError/Code/notFound`` when the field has no index.
    public func dropPayloadIndex(_ key: String) throws(SextantError) {
        let current = state.withLock { $0.payloadSpecs }
        guard current.contains(where: { $0.key == key }) else {
            throw SextantError(.notFound, "field '\(key)' of collection '\(name)' has no index")
        }
        try setPayloadSpecs(current.filter { $0.key != key })
    }

    private func setPayloadSpecs(_ specs: [PayloadIndexSpec]) throws(SextantError) {
        try checkWritable()
        try runOptimizerNow { () throws(SextantError) in
            try database.publish { m throws(SextantError) in
                guard let c = m.collections.firstIndex(where: { $0.id == self.id }) else {
                    throw SextantError(.closed, "collection '\(self.name)' was dropped")
                }
                m.collections[c].payloadIndexes = specs.isEmpty ? nil : specs
            }
            state.withLock { $0.payloadSpecs = specs }
            try ensurePayloadIndexes()
        }
    }

    /// Drops an index file that failed its checksum: filters read the segment's rows until the rebuilt file
    /// is published (full-text search rebuilds it at once). Derived data, so nothing is lost.
    func discardPayloadIndex(of segmentID: UInt64) {
        let old = state.withLock { s -> String? in
            guard let i = s.sealed.firstIndex(where: { $0.segment.id == segmentID }), s.sealed[i].payload != nil else { return nil }
            defer {
                s.sealed[i].payload = nil
                s.sealed[i].payloadGeneration = 0
            }
            return PayloadIndexFile.name(segmentID, generation: s.sealed[i].payloadGeneration)
        }
        guard let old, !isReadOnly else { return }
        try? database.publish { m throws(SextantError) in
            guard let c = m.collections.firstIndex(where: { $0.id == self.id }),
                let i = m.collections[c].segments.firstIndex(where: { $0.id == segmentID })
            else { return }
            m.collections[c].segments[i].payload = nil
        }
        try? io.unlink(directory + "/" + old)
        scheduleOptimizer()
    }

    /// Whether a segment's index file covers exactly the collection's fields.
    func payloadIndexIsCurrent(_ s: SealedSegment, _ specs: [PayloadIndexSpec]) -> Bool {
        guard let reader = s.payload else { return false }
        let have = Set(reader.fields.compactMap { k, f in k == PayloadIndexFile.documentsKey ? nil : "\(k)\u{0}\(f.type)" })
        return have == Set(specs.map { "\($0.key)\u{0}\($0.type.rawValue)" })
    }

    /// Writes the index file of a new segment (before the segment is published, so no published segment
    /// is ever without one).
    func attachPayloadIndex(_ sealed: inout SealedSegment) throws(SextantError) {
        let (specs, generation) = state.withLock { s in
            defer { s.nextDeletionGeneration += 1 }
            return (s.payloadSpecs, s.nextDeletionGeneration)
        }
        let path = directory + "/" + PayloadIndexFile.name(sealed.segment.id, generation: generation)
        try PayloadIndexFile.write(segment: sealed.segment, specs: specs, tokenizer: index.tokenizer, io: io, path: path)
        sealed.payload = try PayloadIndexReader(io: io, path: path, segmentID: sealed.segment.id, rowCount: sealed.segment.rowCount)
        sealed.payloadGeneration = generation
    }

    /// Rebuilds the index files that do not cover the collection's fields (after an index is created or
    /// dropped, or when a file failed to load). Runs on the optimizer queue.
    func ensurePayloadIndexes() throws(SextantError) {
        if isReadOnly { return }
        while true {
            let next = state.withLock { s -> SealedSegment? in
                if s.closed { return nil }
                return s.sealed.first { !payloadIndexIsCurrent($0, s.payloadSpecs) }
            }
            guard var target = next else { return }
            let old = target.payload != nil ? PayloadIndexFile.name(target.segment.id, generation: target.payloadGeneration) : nil
            try attachPayloadIndex(&target)
            let id = target.segment.id
            let (reader, generation) = (target.payload, target.payloadGeneration)
            let nextGeneration = state.withLock { $0.nextDeletionGeneration }
            try database.publish { m throws(SextantError) in
                guard let c = m.collections.firstIndex(where: { $0.id == self.id }),
                    let i = m.collections[c].segments.firstIndex(where: { $0.id == id })
                else { throw SextantError(.closed, "collection '\(self.name)' was dropped") }
                m.collections[c].segments[i].payload = generation
                // Generations are never reused: a later open must not write a file under a published name.
                m.collections[c].nextDeletionGeneration = max(m.collections[c].nextDeletionGeneration, nextGeneration)
            }
            state.withLock { s in
                if let i = s.sealed.firstIndex(where: { $0.segment.id == id }) {
                    s.sealed[i].payload = reader
                    s.sealed[i].payloadGeneration = generation
                }
            }
            if let old, old != PayloadIndexFile.name(id, generation: generation) { try? io.unlink(directory + "/" + old) }
        }
    }
}
