// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Synchronization

extension VectorCollection {
    /// Queues a pass that builds graphs for sealed segments that lack one (only with background work on,
    /// unless `force`).
    package func scheduleIndexing(force: Bool = false) {
        if (!force && !databaseConfiguration.backgroundWork) || isReadOnly { return }
        let already = state.withLock { s in
            defer { s.indexingScheduled = true }
            return s.indexingScheduled || s.closed
        }
        if already { return }
        indexer.async { [self] in indexingPass() }
    }

    private func indexingPass() {
        state.withLock { $0.indexingScheduled = false }
        while let target = nextSegmentToIndex() {
            do throws(SextantError) {
                try buildGraph(for: target)
            } catch {
                state.withLock { s in
                    s.indexingError = error
                    s.building = nil
                }
                return
            }
        }
    }

    private func nextSegmentToIndex() -> Segment? {
        state.withLock { s -> Segment? in
            if s.closed { return nil }
            guard let next = s.sealed.first(where: {
                // Segments an import is still writing wait for its end-of-load merge (see `State.deferred`).
                $0.graph == nil && $0.segment.rowCount >= max(1, index.minimumRowsForGraph) && !s.merging.contains($0.segment.id)
                    && !s.deferred.contains($0.segment.id)
            }) else {
                return nil
            }
            s.building = next.segment.id
            return next.segment
        }
    }

    private func buildGraph(for segment: Segment) throws(SextantError) {
        let space = DistanceSpace(metric: metric, dimension: dimension, vectors: try segment.vectors(), inverseNorms: try segment.inverseNorms())
        let id = segment.id
        let graph = HNSWGraph.build(
            space: space, count: segment.rowCount, neighborsPerNode: index.neighborsPerNode,
            indexingSearchCount: index.indexingSearchCount, threads: index.indexingThreads, seed: id,
            shouldStop: { [self] in
                state.withLock { s in s.closed || s.merging.contains(id) || !s.sealed.contains { $0.segment.id == id } }
            })
        guard let graph else {
            state.withLock { $0.building = nil }
            return
        }
        let path = directory + "/" + HNSWFile.name(id)
        try HNSWFile.write(graph, segmentID: id, io: io, path: path)
        // Serve from the mapping, so the graph's memory is the page cache's, not the heap's.
        let (mapped, file) = try HNSWFile.load(io: io, path: path, segmentID: id, rowCount: segment.rowCount)
        var codes: QuantizedVectors?
        if index.quantization == .int8 {
            let qpath = directory + "/" + QuantizedVectors.name(id)
            try QuantizedVectors.write(space: space, count: segment.rowCount, segmentID: id, io: io, path: qpath)
            codes = try QuantizedVectors(io: io, path: qpath, segmentID: id, count: segment.rowCount, dimension: dimension)
        }
        do {
            try database.publish { m throws(SextantError) in
                guard let c = m.collections.firstIndex(where: { $0.id == self.id }),
                    let i = m.collections[c].segments.firstIndex(where: { $0.id == id })
                else {
                    throw SextantError(.notFound, "segment \(id) is gone")
                }
                m.collections[c].segments[i].graph = true
                if codes != nil { m.collections[c].segments[i].quantized = true }
            }
        } catch {
            try? io.unlink(path)
            try? io.unlink(directory + "/" + QuantizedVectors.name(id))
            state.withLock { $0.building = nil }
            if error.code == .notFound { return }  // compacted away meanwhile: nothing to do
            throw error
        }
        state.withLock { s in
            if let i = s.sealed.firstIndex(where: { $0.segment.id == id }) {
                s.sealed[i].graph = mapped
                s.sealed[i].graphFile = file
                s.sealed[i].codes = codes
            }
            s.building = nil
            s.indexingError = nil
        }
    }

    /// Drops a graph that failed its checksum: searches scan that segment exactly until a rebuilt graph is
    /// published. A graph is derived from the segment, so nothing is lost.
    package func discardGraph(of segmentID: UInt64, because error: SextantError) {
        let discarded = state.withLock { s -> Bool in
            guard let i = s.sealed.firstIndex(where: { $0.segment.id == segmentID }), s.sealed[i].graph != nil else { return false }
            s.sealed[i].graph = nil
            s.sealed[i].graphFile = nil
            s.sealed[i].codes = nil
            s.indexingError = nil
            return true
        }
        guard discarded, !isReadOnly else { return }
        try? database.publish { m throws(SextantError) in
            guard let c = m.collections.firstIndex(where: { $0.id == self.id }),
                let i = m.collections[c].segments.firstIndex(where: { $0.id == segmentID })
            else { return }
            m.collections[c].segments[i].graph = nil
            m.collections[c].segments[i].quantized = nil
        }
        try? io.unlink(directory + "/" + HNSWFile.name(segmentID))
        try? io.unlink(directory + "/" + QuantizedVectors.name(segmentID))
        scheduleIndexing()
    }

    /// Blocks until every flushed segment large enough for a graph has one (flushing first what is frozen).
    /// Searches never need this — segments without a graph are searched exactly — but benchmarks and tests do.
    /// - Throws: the error of a failed graph build.
    public func waitForIndexing() throws(SextantError) {
        while true {
            optimizer.sync {}
            scheduleIndexing(force: true)
            indexer.sync {}
            let (done, error) = state.withLock { s in
                (s.frozen.isEmpty && s.building == nil && s.merging.isEmpty && s.bulkLoads == 0
                    && !s.sealed.contains { $0.graph == nil && $0.segment.rowCount >= max(1, index.minimumRowsForGraph) },
                 s.indexingError)
            }
            if let error { throw error }
            if done { return }
            usleep(1000)
        }
    }
}
