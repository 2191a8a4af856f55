// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a `pthread_mutex_t`: the lock every shared state in Sextant uses.
///
/// Why not `Synchronization.Mutex`: on Linux its contended path waits in a futex loop inside the
/// uninstrumented standard library, so ThreadSanitizer does not see the happens-before edge it makes and
/// reports races between critical sections of one mutex (reproduced with a 20-line program; see
/// Docs/Reliability.md, "Sanitizers"). TSan intercepts pthread mutexes, so with this type its reports are
/// real. An uncontended lock/unlock costs about the same (a CAS each way, in glibc).
package final class Locked<Value>: @unchecked Sendable {  // `value` is only touched with `mutex` held
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held, giving it the value to read or change.
    @inline(__always)
    package func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
