// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Sextant
import Testing

/// Expects `body` to throw a ``SextantError`` with `code` whose message contains every fragment: tests
/// assert the error code and what the message names, not only that something threw.
func expectError(
    _ code: SextantError.Code, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected \(code) (\(fragments)), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as SextantError {
        #expect(error.code == code, "\(error.code): \(error.message)", sourceLocation: sourceLocation)
        for f in fragments { #expect(error.message.contains(f), "'\(f)' is not in: \(error.message)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("expected a SextantError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}
