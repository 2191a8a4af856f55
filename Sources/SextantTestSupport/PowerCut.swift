// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Sextant
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A ``FileIO`` that performs every operation for real and records what it did — writes with their bytes,
/// truncations, fsyncs, creations, renames, links, unlinks, directory fsyncs — so that ``PowerCutImage`` can
/// later build, for any point of the run, a state the disk could be in had the power been cut there.
///
/// This is the technique of SQLite's crash tests (an alternative VFS that simulates the state of the files
/// after a crash) and LevelDB's fault-injection environment (which drops unsynced data): one recorded run
/// yields thousands of simulated power cuts, each checked by opening the database it leaves.
///
/// Only paths under `root` are recorded; the process's view of the files is always the real one.
package final class PowerCutRecorder: FileIO, @unchecked Sendable {  // all state is guarded by `state`
    package enum Op: Sendable {
        /// A new file (a new inode) under `path`.
        case create(path: String, inode: Int)
        case mkdir(path: String, inode: Int)
        case write(inode: Int, offset: Int, bytes: [UInt8])
        case truncate(inode: Int, size: Int)
        case fsync(inode: Int)
        case rename(from: String, to: String)
        case link(from: String, to: String)
        case unlink(path: String)
        case rmdir(path: String)
        case syncDirectory(path: String)
        /// A point the workload marks (for example "batch 17 acknowledged").
        case mark(String)
    }

    private struct Handle {
        var inode: Int
        var append: Bool
        var position: Int
    }
    private struct State {
        var ops: [Op] = []
        var nextInode = 1
        /// Current namespace under `root`: path → inode (files and directories).
        var paths: [String: Int] = [:]
        var sizes: [Int: Int] = [:]
        var handles: [Int32: Handle] = [:]
    }

    package let root: String
    private let base = PosixFileIO()
    private let state = Locked(State())

    /// Records operations under `root`, which must exist and be empty (it counts as durable).
    package init(root: String) {
        self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
        state.withLock { $0.paths[self.root] = 0 }
    }

    package var ops: [Op] { state.withLock { $0.ops } }

    /// Records a marker (e.g. that a batch was acknowledged) at this point of the run.
    package func mark(_ label: String) { state.withLock { $0.ops.append(.mark(label)) } }

    private func recorded(_ path: String) -> Bool { path == root || path.hasPrefix(root + "/") }

    package func open(_ path: String, flags: Int32, mode: UInt32) throws(SextantError) -> Int32 {
        try state.withLock { (s) throws(SextantError) -> Int32 in
            let existed = base.exists(path)
            let fd = try base.open(path, flags: flags, mode: mode)
            guard recorded(path) else { return fd }
            var inode: Int
            if let known = s.paths[path], existed {
                inode = known
            } else {
                inode = s.nextInode
                s.nextInode += 1
                s.paths[path] = inode
                s.sizes[inode] = 0
                s.ops.append(.create(path: path, inode: inode))
            }
            if flags & O_TRUNC != 0 && (s.sizes[inode] ?? 0) > 0 {
                s.ops.append(.truncate(inode: inode, size: 0))
                s.sizes[inode] = 0
            }
            s.handles[fd] = Handle(inode: inode, append: flags & O_APPEND != 0, position: 0)
            return fd
        }
    }

    package func close(_ fd: Int32) {
        state.withLock { s in
            s.handles[fd] = nil
            base.close(fd)
        }
    }

    package func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            try base.write(fd, bytes, path: path)
            guard var h = s.handles[fd] else { return }
            let offset = h.append ? (s.sizes[h.inode] ?? 0) : h.position
            s.ops.append(.write(inode: h.inode, offset: offset, bytes: Array(bytes)))
            s.sizes[h.inode] = max(s.sizes[h.inode] ?? 0, offset + bytes.count)
            h.position = offset + bytes.count
            s.handles[fd] = h
        }
    }

    package func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws(SextantError) -> Int {
        try base.pread(fd, into: buffer, at: offset, path: path)
    }

    package func fsync(_ fd: Int32, path: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            try base.fsync(fd, path: path)
            if let h = s.handles[fd] { s.ops.append(.fsync(inode: h.inode)) }
        }
    }

    package func truncate(_ fd: Int32, to size: Int64, path: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            try base.truncate(fd, to: size, path: path)
            if let h = s.handles[fd] {
                s.ops.append(.truncate(inode: h.inode, size: Int(size)))
                s.sizes[h.inode] = Int(size)
            }
        }
    }

    package func seek(_ fd: Int32, to offset: Int64, path: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            try base.seek(fd, to: offset, path: path)
            s.handles[fd]?.position = Int(offset)
        }
    }

    package func size(_ fd: Int32, path: String) throws(SextantError) -> Int64 { try base.size(fd, path: path) }

    package func rename(_ from: String, to: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            try base.rename(from, to: to)
            guard recorded(from) || recorded(to) else { return }
            precondition(recorded(from) && recorded(to), "a rename across the recorded root: \(from) → \(to)")
            Self.move(&s.paths, from: from, to: to)
            s.ops.append(.rename(from: from, to: to))
        }
    }

    package func unlink(_ path: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            let existed = base.exists(path)
            try base.unlink(path)
            guard recorded(path), existed else { return }
            s.paths[path] = nil
            s.ops.append(.unlink(path: path))
        }
    }

    package func link(_ from: String, to: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            try base.link(from, to: to)
            guard recorded(to) else { return }
            precondition(recorded(from), "a hard link into the recorded root from outside: \(from)")
            s.paths[to] = s.paths[from]
            s.ops.append(.link(from: from, to: to))
        }
    }

    package func makeDirectory(_ path: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            let existed = base.exists(path)
            try base.makeDirectory(path)
            guard recorded(path), !existed else { return }
            let inode = s.nextInode
            s.nextInode += 1
            s.paths[path] = inode
            s.ops.append(.mkdir(path: path, inode: inode))
        }
    }

    package func removeDirectory(_ path: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            let existed = base.exists(path)
            try base.removeDirectory(path)
            guard recorded(path), existed else { return }
            s.paths[path] = nil
            s.ops.append(.rmdir(path: path))
        }
    }

    package func syncDirectory(_ path: String) throws(SextantError) {
        try state.withLock { (s) throws(SextantError) in
            try base.syncDirectory(path)
            if recorded(path) { s.ops.append(.syncDirectory(path: path)) }
        }
    }

    package func listDirectory(_ path: String) throws(SextantError) -> [String] { try base.listDirectory(path) }
    package func exists(_ path: String) -> Bool { base.exists(path) }
    package func isDirectory(_ path: String) -> Bool { base.isDirectory(path) }
    package func mapReadOnly(_ fd: Int32, length: Int, path: String) throws(SextantError) -> UnsafeRawBufferPointer {
        try base.mapReadOnly(fd, length: length, path: path)
    }
    package func unmap(_ region: UnsafeRawBufferPointer) { base.unmap(region) }

    /// Moves `from` (and, for a directory, everything under it) to `to` in a path map.
    static func move(_ paths: inout [String: Int], from: String, to: String) {
        let prefix = from + "/"
        for (p, inode) in paths where p == from || p.hasPrefix(prefix) {
            paths[p] = nil
            paths[to + p.dropFirst(from.count)] = inode
        }
    }
}

/// The state a disk could be in after a power cut at some point of a recorded run.
///
/// The model (conservative; real file systems keep more):
/// - file data reaches the disk by 512-byte sectors, each in some version it had since the file's last
///   completed fsync (any version, independently of the others: writeback reorders) — or, if never written
///   back, as it was at that fsync (zeros beyond the size it had then);
/// - a file's size is one of the sizes it had since its last fsync;
/// - directory entries (creations, renames, links, removals) become durable with an fsync of their directory;
///   of those made since, a prefix survives (a rename is one atomic step) — an fsync of the file itself does
///   not make its name durable;
/// - the write in progress at the cut may have reached the page cache only partly (a byte prefix of it).
package struct PowerCutImage {
    private final class Inode {
        let isDirectory: Bool
        /// File data as of the last fsync, and the writes and truncations since, in order.
        var durable: [UInt8] = []
        var pending: [PowerCutRecorder.Op] = []
        /// Current data (what the process saw).
        var data: [UInt8] = []
        /// Directory entries as of the last directory fsync, and the changes since.
        var durableEntries: [String: Int] = [:]
        var entries: [String: Int] = [:]
        var pendingEntries: [EntryOp] = []
        init(isDirectory: Bool) { self.isDirectory = isDirectory }
    }
    private enum EntryOp {
        case add(String, Int)
        case remove(String)
        case rename(String, String, Int)
    }

    /// How many operations of the run the image includes (the cut happened after them).
    package let cut: Int
    /// The markers recorded before the cut.
    package private(set) var marks: [String]
    private let root: String
    private var inodes: [Int: Inode] = [:]

    /// Replays `ops[0..<cut]` into the model. `partialLast` keeps only this many bytes of the operation at
    /// the cut when it is a write (a process stopped mid-copy); nil: none of it.
    package init(ops: [PowerCutRecorder.Op], root: String, cut: Int, partialLast: Int? = nil) {
        self.cut = cut
        self.root = root
        let rootInode = Inode(isDirectory: true)
        inodes[0] = rootInode
        var marks: [String] = []
        var limit = min(cut, ops.count)
        var extra: PowerCutRecorder.Op?
        if let partialLast, cut < ops.count, case .write(let inode, let offset, let bytes) = ops[cut], partialLast > 0 {
            extra = .write(inode: inode, offset: offset, bytes: Array(bytes.prefix(partialLast)))
            limit = cut
        }
        self.marks = []
        for op in ops[0..<limit] + (extra.map { [$0] } ?? []) {
            apply(op, marks: &marks)
        }
        self.marks = marks
    }

    private func resolve(_ path: String) -> (parent: Inode, name: String)? {
        guard path.hasPrefix(root + "/") else { return nil }
        let parts = path.dropFirst(root.count + 1).split(separator: "/").map(String.init)
        var dir = inodes[0]!
        for part in parts.dropLast() {
            guard let next = dir.entries[part], let node = inodes[next], node.isDirectory else { return nil }
            dir = node
        }
        return (dir, parts.last!)
    }

    private mutating func apply(_ op: PowerCutRecorder.Op, marks: inout [String]) {
        switch op {
        case .mark(let label):
            marks.append(label)
        case .create(let path, let inode), .mkdir(let path, let inode):
            var isDirectory = false
            if case .mkdir = op { isDirectory = true }
            let node = Inode(isDirectory: isDirectory)
            inodes[inode] = node
            if let (parent, name) = resolve(path) {
                parent.entries[name] = inode
                parent.pendingEntries.append(.add(name, inode))
            }
        case .write(let inode, let offset, let bytes):
            guard let node = inodes[inode] else { return }
            if node.data.count < offset + bytes.count { node.data += [UInt8](repeating: 0, count: offset + bytes.count - node.data.count) }
            node.data.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            node.pending.append(op)
        case .truncate(let inode, let size):
            guard let node = inodes[inode] else { return }
            if node.data.count > size { node.data.removeSubrange(size...) } else {
                node.data += [UInt8](repeating: 0, count: size - node.data.count)
            }
            node.pending.append(op)
        case .fsync(let inode):
            guard let node = inodes[inode] else { return }
            node.durable = node.data
            node.pending.removeAll()
        case .rename(let from, let to):
            guard let (p1, n1) = resolve(from), let (p2, n2) = resolve(to), let inode = p1.entries[n1] else { return }
            p1.entries[n1] = nil
            p2.entries[n2] = inode
            if p1 === p2 {
                p1.pendingEntries.append(.rename(n1, n2, inode))
            } else {
                p1.pendingEntries.append(.remove(n1))
                p2.pendingEntries.append(.add(n2, inode))
            }
        case .link(let from, let to):
            guard let (p1, n1) = resolve(from), let (p2, n2) = resolve(to), let inode = p1.entries[n1] else { return }
            p2.entries[n2] = inode
            p2.pendingEntries.append(.add(n2, inode))
        case .unlink(let path), .rmdir(let path):
            guard let (parent, name) = resolve(path) else { return }
            parent.entries[name] = nil
            parent.pendingEntries.append(.remove(name))
        case .syncDirectory(let path):
            let node: Inode?
            if path == root { node = inodes[0] } else if let (parent, name) = resolve(path), let i = parent.entries[name] { node = inodes[i] } else { node = nil }
            if let node {
                node.durableEntries = node.entries
                node.pendingEntries.removeAll()
            }
        }
    }

    /// How the unsynced state is decided.
    package enum Loss: Sendable, CaseIterable {
        /// Everything not covered by an fsync is lost.
        case everythingUnsynced
        /// Everything written reached the disk (as after a process crash).
        case nothing
        /// Each sector, size and directory change independently (seeded).
        case random
    }

    /// Writes the post-cut state under `destination` (which must not exist).
    package func materialize(at destination: String, loss: Loss, seed: UInt64) throws {
        var rng = RepeatableRandomNumberGenerator(seed: seed)
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        var files: [Int: [UInt8]] = [:]  // an inode's post-cut content, decided once (hard links share it)
        func content(_ node: Inode, _ inode: Int) -> [UInt8] {
            if let done = files[inode] { return done }
            let result = postCutData(node, loss: loss, rng: &rng)
            files[inode] = result
            return result
        }
        func entries(_ node: Inode) -> [String: Int] {
            var e = node.durableEntries
            let keep: Int
            switch loss {
            case .everythingUnsynced: keep = 0
            case .nothing: keep = node.pendingEntries.count
            case .random: keep = Int.random(in: 0...node.pendingEntries.count, using: &rng)
            }
            for op in node.pendingEntries.prefix(keep) {
                switch op {
                case .add(let n, let i): e[n] = i
                case .remove(let n): e[n] = nil
                case .rename(let a, let b, let i):
                    e[a] = nil
                    e[b] = i
                }
            }
            return e
        }
        func write(_ node: Inode, _ path: String, depth: Int) throws {
            guard depth < 64 else { return }
            for (name, inode) in entries(node).sorted(by: { $0.key < $1.key }) {
                guard let child = inodes[inode] else { continue }
                let p = path + "/" + name
                if child.isDirectory {
                    try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: false)
                    try write(child, p, depth: depth + 1)
                } else {
                    FileManager.default.createFile(atPath: p, contents: Data(content(child, inode)))
                }
            }
        }
        try write(inodes[0]!, destination, depth: 0)
    }

    /// A file's content after the cut (see the type's discussion).
    private func postCutData(_ node: Inode, loss: Loss, rng: inout RepeatableRandomNumberGenerator) -> [UInt8] {
        if node.pending.isEmpty { return node.durable }
        switch loss {
        case .everythingUnsynced: return node.durable
        case .nothing: return node.data
        case .random: break
        }
        // Sizes the file had since its last fsync; one of them is on disk.
        var sizes = [node.durable.count]
        var size = node.durable.count
        for op in node.pending {
            switch op {
            case .write(_, let offset, let bytes): size = max(size, offset + bytes.count)
            case .truncate(_, let s): size = s
            default: break
            }
            sizes.append(size)
        }
        let finalSize = sizes[Int.random(in: 0..<sizes.count, using: &rng)]
        var out = node.durable
        if out.count < finalSize { out += [UInt8](repeating: 0, count: finalSize - out.count) } else { out.removeSubrange(finalSize...) }
        // Sectors touched since the fsync: each gets the version it had after some number of pending ops.
        var touched = Set<Int>()
        for op in node.pending {
            switch op {
            case .write(_, let offset, let bytes) where !bytes.isEmpty:
                for s in (offset / 512)...((offset + bytes.count - 1) / 512) { touched.insert(s) }
            case .truncate(_, let s):
                let first = s / 512
                let last = max(first, (sizes.max()! - 1) / 512)
                for x in first...last { touched.insert(x) }
            default: break
            }
        }
        for sector in touched.sorted() {
            let start = sector * 512
            guard start < finalSize else { continue }
            let end = min(finalSize, start + 512)
            let version = Int.random(in: 0...node.pending.count, using: &rng)
            // The sector as it was at the fsync, then the first `version` pending ops applied to it.
            var bytes = [UInt8](repeating: 0, count: end - start)
            for i in start..<end where i < node.durable.count { bytes[i - start] = node.durable[i] }
            var curSize = node.durable.count
            for op in node.pending.prefix(version) {
                switch op {
                case .write(_, let offset, let w):
                    let a = max(start, offset), b = min(end, offset + w.count)
                    if a < b { for i in a..<b { bytes[i - start] = w[i - offset] } }
                    curSize = max(curSize, offset + w.count)
                case .truncate(_, let s):
                    if s < end { for i in max(start, s)..<end { bytes[i - start] = 0 } }
                    curSize = s
                default: break
                }
            }
            _ = curSize
            out.replaceSubrange(start..<end, with: bytes)
        }
        return out
    }
}
