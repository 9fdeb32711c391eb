// The token read for hot paths, through JNI instead of UniFFI's JNA calls (tens of microseconds
// each on the JVM). No session logic here: the answer is the Rust client's fresh_access_token().
package uniffi.sessionkit_ffi

import com.sun.jna.NativeLibrary

/** The JNI entry point of the library JNA already loaded (`jvm_read.rs`). */
internal object TokenReads {
    init {
        // JNI needs the library loaded by the JVM itself. By name first (Android's jniLibs, a
        // java.library.path); else the very file JNA loaded (its own registry is in that copy).
        try {
            System.loadLibrary("sessionkit_ffi")
        } catch (byName: UnsatisfiedLinkError) {
            val file = runCatching { NativeLibrary.getInstance("sessionkit_ffi").file }.getOrNull()
            if (file == null || !file.isAbsolute || !file.exists()) throw byName
            System.load(file.absolutePath)
        }
    }

    @JvmStatic external fun freshAccessToken(reader: Long): String?
}

/**
 * Reads the access token of one client cheaply, for code that needs it on every request: the
 * token if it is fresh now, else null (then call the client's suspending `accessToken()`).
 * Reads nothing once its client is closed.
 */
class TokenReader internal constructor(private val client: SessionClient) {
    // The client is held so that it stays registered for as long as this reader is used.
    private val reader = client.tokenReaderId().toLong()

    /** The access token if it is fresh now (no I/O, no suspension), else null. */
    fun freshAccessToken(): String? = TokenReads.freshAccessToken(reader)
}

/** A [TokenReader] for this client: make it once, read with it on every request. */
fun SessionClient.tokenReader(): TokenReader = TokenReader(this)
