// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Synchronization

/// What ``Database/verify(at:configuration:)`` found.
public struct VerificationReport: Sendable, Codable {
    /// One line per problem, naming the file and offset. Empty when everything checked out.
    public var problems: [String] = []
    public var filesChecked = 0
    public var bytesChecked = 0
    public var isClean: Bool { problems.isEmpty }
}

extension Database {
    /// Checks every checksum of every file the database uses: manifest, segment sections, deletion
    /// files and log records. Opens the database (so recovery runs first: a torn log tail left by a crash
    /// is cut, as on any open, and is not a problem); corruption anywhere is reported, not repaired.
    public static func verify(at path: String, configuration: Configuration = Configuration()) -> VerificationReport {
        var report = VerificationReport()
        var config = configuration
        config.backgroundWork = false
        let db: Database
        do {
            db = try Database.open(at: path, configuration: config)
        } catch {
            report.problems.append(error.message)
            return report
        }
        defer { db.close() }
        let io = config.fileIO
        let manifest = db.core.currentManifest
        let manifestPath = path + "/" + Manifest.fileName(manifest.generation)
        do {
            let bytes = try io.readFile(manifestPath)
            _ = try Manifest.decode(bytes, path: manifestPath)
            report.filesChecked += 1
            report.bytesChecked += bytes.count
        } catch {
            report.problems.append(error.message)
        }
        for (_, error) in db.unavailableCollections().sorted(by: { $0.key < $1.key }) {
            report.problems.append(error.message)
        }
        for entry in manifest.collections {
            guard let collection = try? db.collection(entry.name) else { continue }
            let directory = db.core.collectionDirectory(entry.id)
            let sealed = collection.state.withLock { $0.sealed }
            for s in sealed {
                do {
                    try s.segment.verifyAll()
                    report.filesChecked += 1
                    report.bytesChecked += s.segment.fileSize
                } catch {
                    report.problems.append(error.message)
                }
                if let file = s.graphFile {
                    do {
                        try file.verify()
                        try s.codes?.verify()
                        report.filesChecked += 1
                        report.bytesChecked += file.byteCount
                    } catch {
                        report.problems.append(error.message)
                    }
                } else if entry.segments.first(where: { $0.id == s.segment.id })?.graph == true {
                    report.problems.append("\(directory)/\(HNSWFile.name(s.segment.id)): the graph file is damaged or missing (it will be rebuilt)")
                }
                if let reader = s.payload {
                    do {
                        try reader.verify()
                        report.filesChecked += 1
                        report.bytesChecked += reader.byteCount
                    } catch {
                        report.problems.append(error.message + " (it will be rebuilt)")
                    }
                } else if let g = entry.segments.first(where: { $0.id == s.segment.id })?.payload {
                    report.problems.append("\(directory)/\(PayloadIndexFile.name(s.segment.id, generation: g)): the index file is damaged or missing (it will be rebuilt)")
                }
                if s.generation != 0 {
                    let p = directory + "/" + SegmentFile.deletionName(s.segment.id, generation: s.generation)
                    do {
                        let bytes = try io.readFile(p)
                        _ = try DeletionFile.decode(bytes, path: p, segmentID: s.segment.id, rowCount: s.segment.rowCount)
                        report.filesChecked += 1
                        report.bytesChecked += bytes.count
                    } catch {
                        report.problems.append(error.message)
                    }
                }
            }
            let walDir = directory + "/wal"
            let files = ((try? io.listDirectory(walDir)) ?? []).compactMap { WALFile.number(fromName: $0) }.sorted()
            var previous = entry.checkpointSeq
            for (i, n) in files.enumerated() where n >= entry.firstLiveWALFile {
                let p = walDir + "/" + WALFile.name(n)
                do {
                    let outcome = try WALReader.replay(io: io, path: p, isLastFile: i == files.count - 1, previousSeq: previous) { _, _ in }
                    if outcome.tornTail { report.problems.append("\(p): offset \(outcome.validEnd): damaged record at the tail of the log") }
                    previous = max(previous, outcome.lastSeq)
                    report.filesChecked += 1
                    report.bytesChecked += Int(outcome.validEnd)
                } catch {
                    report.problems.append(error.message)
                }
            }
        }
        return report
    }
}
