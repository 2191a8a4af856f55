// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

/// Group commit: concurrent writers queue their batches; the first in line becomes the leader, takes
/// every queued batch, writes them with one `write` and one fsync, applies them, and wakes the others.
/// Under load many batches share one fsync; alone, a writer pays exactly one.
package final class CommitQueue<Item, Result>: @unchecked Sendable {  // all state guarded by `condition`
    private final class Ticket {
        let item: Item
        var result: Swift.Result<Result, SextantError>?
        init(_ item: Item) { self.item = item }
    }
    private let condition = NSCondition()
    private var queue: [Ticket] = []
    private var leaderActive = false

    package init() {}

    /// Submits `item`; `lead` is called on one thread with a group of items (in arrival order) and must
    /// return one result per item.
    package func submit(
        _ item: Item, lead: ([Item]) -> [Swift.Result<Result, SextantError>]
    ) throws(SextantError) -> Result {
        let ticket = Ticket(item)
        condition.lock()
        queue.append(ticket)
        while ticket.result == nil && (leaderActive || queue.first !== ticket) {
            condition.wait()
        }
        if let r = ticket.result {
            condition.unlock()
            return try r.get()
        }
        leaderActive = true
        let group = queue
        queue.removeAll()
        condition.unlock()

        let results = lead(group.map(\.item))

        condition.lock()
        for (t, r) in zip(group, results) { t.result = r }
        leaderActive = false
        condition.broadcast()
        condition.unlock()
        return try results[0].get()
    }
}
