// Kotlin idioms on top of the generated bindings: no session logic here, only the shape Kotlin
// code expects.
package uniffi.sessionkit_ffi

import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import uniffi.sessionkit_core.SessionEvent

/**
 * The session's events as a cold [Flow]: each collection subscribes when it starts and gets every
 * event from then on; cancelling the collection (or the scope) ends its subscription. The flow
 * completes when the client is gone.
 */
fun SessionClient.events(): Flow<SessionEvent> = flow {
    subscribe().use { stream ->
        while (true) emit(stream.next() ?: break)
    }
}
