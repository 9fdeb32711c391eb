// The token read for hot paths, through JNI instead of UniFFI's JNA calls (tens of microseconds
// each on the JVM). No session logic here: the answer is the Rust client's fresh_access_token().
package uniffi.sessionkit_ffi

import com.sun.jna.NativeLibrary

/** The JNI entry point of the library JNA already loaded (`jvm_read.rs`). */
internal object TokenReads {
    init {
        // JNI needs the library loaded by the JVM itself: the file JNA found, else by name.
        val file = runCatching { NativeLibrary.getInstance("sessionkit_ffi").file }.getOrNull()
        if (file != null) System.load(file.absolutePath) else System.loadLibrary("sessionkit_ffi")
    }

    @JvmStatic external fun freshAccessToken(reader: Long): String?
}

/**
 * Reads the access token of one client cheaply, for code that needs it on every request: the
 * token if it is fresh now, else null (then call the client's suspending `accessToken()`).
 * Reads nothing once its client is closed.
 */
class TokenReader internal constructor(private val reader: Long) {
    /** The access token if it is fresh now (no I/O, no suspension), else null. */
    fun freshAccessToken(): String? = TokenReads.freshAccessToken(reader)
}

/** A [TokenReader] for this client: make it once, read with it on every request. */
fun SessionClient.tokenReader(): TokenReader = TokenReader(tokenReaderId().toLong())
