// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantKernels
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How many CPUs this process may actually run on: the worker count of batch searches, graph builds and
/// other fan-outs when the configuration does not fix one.
///
/// `_SC_NPROCESSORS_ONLN` counts the machine's CPUs and ignores both the affinity mask (`taskset -c 0`,
/// `numactl`) and a cgroup v2 quota (`docker --cpus 2`, Kubernetes limits): a container limited to 2 CPUs on
/// a 64-core host would start 64 threads that take turns. This takes the smallest of the three.
package enum AvailableCPUs {
    /// Computed once, at first use.
    package static let count: Int = current()

    /// The CPUs available now to the calling thread's process: min(online, affinity mask, cgroup quota), ≥ 1.
    package static func current() -> Int {
        var n = online()
        if let a = affinity() { n = min(n, a) }
        if let q = cgroupQuota() { n = min(n, q) }
        return max(1, n)
    }

    static func online() -> Int {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return ProcessInfo.processInfo.activeProcessorCount
        #endif
    }

    /// CPUs in the calling thread's affinity mask (threads inherit it from the process).
    static func affinity() -> Int? {
        let n = Int(sx_affinity_cpu_count())
        return n > 0 ? n : nil
    }

    /// The tightest cgroup v2 `cpu.max` quota on the path from this process's cgroup to the root, rounded
    /// up to whole CPUs; nil when there is none (cgroup v1, no limit, not Linux).
    static func cgroupQuota(root: String = "/sys/fs/cgroup", procSelfCgroup: String = "/proc/self/cgroup") -> Int? {
        guard let text = try? String(contentsOfFile: procSelfCgroup, encoding: .utf8), var path = cgroupPath(text) else { return nil }
        var best: Int?
        while true {
            if let limit = (try? String(contentsOfFile: root + path + "/cpu.max", encoding: .utf8)).flatMap(cpuMaxLimit) {
                best = min(best ?? limit, limit)
            }
            if path == "/" || path.isEmpty { break }
            path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if path.isEmpty { path = "/" }
        }
        return best
    }

    /// The cgroup v2 path in `/proc/self/cgroup` (the line `0::/path`).
    static func cgroupPath(_ procSelfCgroup: String) -> String? {
        for line in procSelfCgroup.split(separator: "\n") where line.hasPrefix("0::") {
            let path = String(line.dropFirst(3))
            return path.hasPrefix("/") ? path : nil
        }
        return nil
    }

    /// `cpu.max` is `"<quota> <period>"` in microseconds, or `"max <period>"` for no limit.
    static func cpuMaxLimit(_ text: String) -> Int? {
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let quota = Int(parts[0]), let period = Int(parts[1]), quota > 0, period > 0 else { return nil }
        return max(1, (quota + period - 1) / period)
    }
}
