// Swift idioms on top of the generated bindings: no session logic here, only the shape Swift
// code expects. Copied next to the generated sources (scripts/kotlin-test, build-xcframework.sh).
// Not compiled on the project's machines (no Swift toolchain there): checked on a Mac only.

extension SessionClient {
    /// The session's events as an `AsyncStream`: it subscribes when created and yields every event
    /// from then on; it finishes when the client is gone. Ending the iteration (or cancelling the
    /// task that iterates) ends the subscription.
    public func events() -> AsyncStream<SessionEvent> {
        let subscription = subscribe()
        return AsyncStream { continuation in
            let pump = Task {
                while let event = await subscription.next() {
                    continuation.yield(event)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in
                // Swift's cancellation does not reach the Rust future: cancel() wakes it.
                subscription.cancel()
                pump.cancel()
            }
        }
    }
}
