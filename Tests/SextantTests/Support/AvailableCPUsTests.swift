// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// Worker counts follow the CPUs the process may use: the affinity mask and the cgroup v2 quota, not the
/// machine's CPU count.
@Suite struct AvailableCPUsTests {
    @Test func cpuMaxQuotasRoundUpToWholeCPUs() {
        #expect(AvailableCPUs.cpuMaxLimit("max 100000\n") == nil)
        #expect(AvailableCPUs.cpuMaxLimit("200000 100000\n") == 2)
        #expect(AvailableCPUs.cpuMaxLimit("150000 100000") == 2)
        #expect(AvailableCPUs.cpuMaxLimit("50000 100000") == 1)
        #expect(AvailableCPUs.cpuMaxLimit("garbage") == nil)
        #expect(AvailableCPUs.cpuMaxLimit("0 100000") == nil)
    }

    @Test func theCgroupV2PathIsTheZeroLine() {
        #expect(AvailableCPUs.cgroupPath("0::/user.slice/session-1.scope\n") == "/user.slice/session-1.scope")
        #expect(AvailableCPUs.cgroupPath("12:cpu,cpuacct:/docker/abc\n0::/\n") == "/")
        #expect(AvailableCPUs.cgroupPath("12:cpu,cpuacct:/docker/abc\n") == nil)  // cgroup v1 only
    }

    /// The tightest quota on the way from the process's cgroup to the root wins.
    @Test func theTightestQuotaOnThePathToTheRootWins() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let root = dir.sub("cgroup")
        try FileManager.default.createDirectory(atPath: root + "/pods/a/b", withIntermediateDirectories: true)
        try "max 100000\n".write(toFile: root + "/pods/a/b/cpu.max", atomically: true, encoding: .utf8)
        try "300000 100000\n".write(toFile: root + "/pods/a/cpu.max", atomically: true, encoding: .utf8)
        try "800000 100000\n".write(toFile: root + "/pods/cpu.max", atomically: true, encoding: .utf8)
        try "0::/pods/a/b\n".write(toFile: dir.sub("cgroup-self"), atomically: true, encoding: .utf8)
        #expect(AvailableCPUs.cgroupQuota(root: root, procSelfCgroup: dir.sub("cgroup-self")) == 3)
        try "0::/pods\n".write(toFile: dir.sub("cgroup-self"), atomically: true, encoding: .utf8)
        #expect(AvailableCPUs.cgroupQuota(root: root, procSelfCgroup: dir.sub("cgroup-self")) == 8)
        try "0::/elsewhere\n".write(toFile: dir.sub("cgroup-self"), atomically: true, encoding: .utf8)
        #expect(AvailableCPUs.cgroupQuota(root: root, procSelfCgroup: dir.sub("cgroup-self")) == nil)
    }

    @Test func theAffinityMaskIsReadAndBoundsTheCount() throws {
        let affinity = try #require(AvailableCPUs.affinity())
        #expect(affinity >= 1 && affinity <= AvailableCPUs.online())
        #expect(AvailableCPUs.current() <= affinity)
    }
}
