// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#endif

/// What ``Database/verify(at:configuration:)`` found.
public struct VerificationReport: Sendable, Codable {
    /// Corruption, one line per problem, naming the file and offset. Empty when everything checked out.
    public var problems: [String] = []
    /// Findings that are not corruption: a torn log tail a crash left (the next open for writing cuts it),
    /// files no manifest names (the next open for writing removes them).
    public var notes: [String] = []
    public var filesChecked = 0
    public var bytesChecked = 0
    public var isClean: Bool { problems.isEmpty }
}

extension Database {
    /// Checks every file the database uses — the manifest and its consistency, every segment section's
    /// checksum and structure, deletion files, graphs, int8 codes, index files and every log record — and
    /// changes nothing: no recovery runs, no torn tail is cut, no file is removed.
    ///
    /// Takes the database's lock shared, so it runs beside read-only opens but not while a process has the
    /// database open for writing.
    /// - Throws: ``SextantError/Code/locked`` when a process has the database open for writing,
    ///   ``SextantError/Code/notFound`` when there is no database at `path`, ``SextantError/Code/io`` when it
    ///   cannot be read. Corruption is not thrown: it is what the report lists.
    public static func verify(at path: String, configuration: Configuration = Configuration()) throws(SextantError) -> VerificationReport {
        let io = configuration.fileIO
        let path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard io.isDirectory(path) else { throw SextantError(.notFound, "no database at \(path)") }
        var config = configuration
        config.readOnly = true
        // Holding the shared lock keeps writers out while we read.
        let db = try Database.open(at: path, configuration: config, manifestOnly: true)
        defer { db.close() }
        var report = VerificationReport()
        var checker = Verifier(io: io, report: report)
        checker.check(database: path, manifest: db.core.currentManifest)
        report = checker.report
        return report
    }
}

/// The checks of ``Database/verify(at:configuration:)``, file by file.
private struct Verifier {
    let io: any FileIO
    var report: VerificationReport

    mutating func problem(_ s: String) { report.problems.append(s) }
    mutating func note(_ s: String) { report.notes.append(s) }
    mutating func checked(_ bytes: Int) {
        report.filesChecked += 1
        report.bytesChecked += bytes
    }

    mutating func check(database path: String, manifest: Manifest) {
        let manifestPath = path + "/" + Manifest.fileName(manifest.generation)
        if let bytes = try? io.readFile(manifestPath) { checked(bytes.count) }
        let problems = manifest.inconsistencies()
        for (i, p) in problems.sorted(by: { $0.key < $1.key }) {
            problem("\(manifestPath): collection '\(manifest.collections[i].name)': \(p)")
        }
        for (i, entry) in manifest.collections.enumerated() where problems[i] == nil {
            check(collection: entry, directory: path + "/collections/" + hex16(entry.id))
        }
        let named = Set(manifest.collections.map { hex16($0.id) })
        for name in (try? io.listDirectory(path + "/collections")) ?? [] where !named.contains(name) {
            note("\(path)/collections/\(name): a directory no collection uses (a create or drop cut short; the next open removes it)")
        }
        for name in (try? io.listDirectory(path)) ?? [] {
            if name.hasPrefix("MANIFEST-") && name != Manifest.fileName(manifest.generation) || name == "CURRENT.tmp" {
                note("\(path)/\(name): left by an interrupted manifest publish (the next open removes it)")
            }
        }
    }

    mutating func check(collection entry: Manifest.CollectionEntry, directory: String) {
        var named: Set<String> = []
        for s in entry.segments {
            let path = directory + "/" + SegmentFile.name(s.id)
            named.insert(SegmentFile.name(s.id))
            let segment: Segment
            do throws(SextantError) {
                segment = try Segment(io: io, path: path, expectedID: s.id)
                guard segment.rowCount == s.rows, segment.dimension == entry.dimension, segment.metric == entry.metric else {
                    throw SextantError(.corrupt, "\(path): holds \(segment.rowCount) rows of dimension \(segment.dimension) (\(segment.metric)); the manifest says \(s.rows) of \(entry.dimension) (\(entry.metric))")
                }
                try segment.verifyAll(releasingPages: true)
                checked(segment.fileSize)
            } catch {
                problem(error.message)
                continue
            }
            if segment.maxSeq > entry.checkpointSeq {
                problem("\(path): holds batches up to sequence \(segment.maxSeq), past the manifest's checkpoint \(entry.checkpointSeq)")
            }
            if s.deletionGeneration != 0 {
                let name = SegmentFile.deletionName(s.id, generation: s.deletionGeneration)
                named.insert(name)
                let p = directory + "/" + name
                do throws(SextantError) {
                    let bytes = try io.readFile(p)
                    _ = try DeletionFile.decode(bytes, path: p, segmentID: s.id, rowCount: segment.rowCount)
                    checked(bytes.count)
                } catch {
                    problem(error.message)
                }
            }
            if s.graph == true {
                let name = HNSWFile.name(s.id)
                named.insert(name)
                let p = directory + "/" + name
                do throws(SextantError) {
                    // The graph owns the mapping the file reads: keep it alive while checking.
                    let (graph, file) = try HNSWFile.load(io: io, path: p, segmentID: s.id, rowCount: segment.rowCount)
                    try withExtendedLifetime(graph) { () throws(SextantError) in try file.verify() }
                    checked(file.byteCount)
                } catch {
                    problem(error.message + " (derived data: it will be rebuilt)")
                }
                if s.quantized == true {
                    let name = QuantizedVectors.name(s.id)
                    named.insert(name)
                    do throws(SextantError) {
                        let codes = try QuantizedVectors(
                            io: io, path: directory + "/" + name, segmentID: s.id, count: segment.rowCount, dimension: entry.dimension)
                        try codes.verify()
                        checked(codes.byteCount)
                    } catch {
                        problem(error.message + " (derived data: it will be rebuilt)")
                    }
                }
            }
            if let g = s.payload {
                let name = PayloadIndexFile.name(s.id, generation: g)
                named.insert(name)
                do throws(SextantError) {
                    let reader = try PayloadIndexReader(io: io, path: directory + "/" + name, segmentID: s.id, rowCount: segment.rowCount)
                    try reader.verify()
                    checked(reader.byteCount)
                } catch {
                    problem(error.message + " (derived data: it will be rebuilt)")
                }
            }
        }
        for name in (try? io.listDirectory(directory)) ?? [] where name != "wal" && !named.contains(name) {
            note("\(directory)/\(name): a file the manifest does not name (the next open removes it)")
        }
        checkLogs(entry, directory + "/wal")
    }

    mutating func checkLogs(_ entry: Manifest.CollectionEntry, _ walDir: String) {
        let names = (try? io.listDirectory(walDir)) ?? []
        for name in names where WALFile.number(fromName: name) == nil {
            note("\(walDir)/\(name): not a log file (the next open removes it)")
        }
        let files = names.compactMap { WALFile.number(fromName: $0) }.sorted()
        let live = files.filter { $0 >= entry.firstLiveWALFile }
        for n in files where n < entry.firstLiveWALFile {
            let p = walDir + "/" + WALFile.name(n)
            if let beyond = WALReader.firstBatch(after: entry.checkpointSeq, io: io, path: p, fileNumber: n) {
                problem("\(p): holds batch \(beyond), after the checkpoint \(entry.checkpointSeq), but the manifest says log files below \(entry.firstLiveWALFile) are obsolete")
            } else {
                note("\(p): an obsolete log file (every batch in it is in the segments; the next open removes it)")
            }
        }
        var next = entry.checkpointSeq + 1
        var previous = entry.checkpointSeq
        for (i, n) in live.enumerated() {
            let p = walDir + "/" + WALFile.name(n)
            do throws(SextantError) {
                let outcome = try WALReader.replay(
                    io: io, path: p, fileNumber: n, isLastFile: i == live.count - 1, previousSeq: previous
                ) { (seq, mutations) throws(SextantError) in
                    guard seq > entry.checkpointSeq else { return }
                    guard seq == next else {
                        throw SextantError(.corrupt, "\(p): batch sequence \(seq) follows \(next - 1): a log file is missing or damaged")
                    }
                    for m in mutations where m.kind == .upsert {
                        guard m.vector.count == entry.dimension, m.vector.allSatisfy({ $0.isFinite }) else {
                            throw SextantError(.corrupt, "\(p): batch \(seq) holds a vector of \(m.vector.count) values that the collection (dimension \(entry.dimension)) cannot hold")
                        }
                    }
                    next = seq + 1
                }
                previous = max(previous, outcome.lastSeq)
                if outcome.tornTail {
                    note("\(p): offset \(outcome.validEnd): an incomplete record at the tail of the log, left by a crash; it was never acknowledged, and the next open for writing cuts it")
                }
                checked(Int(outcome.validEnd))
            } catch {
                problem(error.message)
                return
            }
        }
    }
}
