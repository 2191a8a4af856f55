// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

extension VectorCollection {
    /// Imports records off the caller's thread. Cancelling the task stops the import after the batch in
    /// flight: batches already reported through `onCommit` stay committed, nothing else is applied.
    /// - Throws: ``SextantError/Code/cancelled`` when the task was cancelled, or what the synchronous
    ///   ``importRecords(from:batchSize:onCommit:)`` throws.
    public func importRecords(
        from source: ImportSource, batchSize: Int = 1000, onCommit: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> Int {
        let cancelled = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await offload { [self] in
                try importRecords(from: source, batchSize: batchSize) { n in
                    onCommit(n)
                    if cancelled.isSet { throw SextantError(.cancelled, "import cancelled after \(n) records") }
                }
            }
        } onCancel: {
            cancelled.set()
        }
    }

    /// Merges segments and drops deleted rows, off the caller's thread.
    public func compact() async throws {
        try await offload { [self] in try compact() }
    }

    /// Flushes the in-memory table to a segment, off the caller's thread.
    public func flush() async throws {
        try await offload { [self] in try flush() }
    }
}

/// Runs blocking work on a thread of its own so it never occupies the cooperative pool.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

final class CancellationFlag: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
