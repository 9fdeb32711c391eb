// The cost of one access_token() call through the FFI from Kotlin on a fresh token:
// `scripts/kotlin-test --bench`. Prints the median of 11 batches of 20,000 calls.

import kotlinx.coroutines.runBlocking
import uniffi.sessionkit_ffi.tokenReader

object AccessTokenBenchmark {
    @JvmStatic
    fun main(args: Array<String>) = runBlocking {
        TestProvider(accessTtlSeconds = 3600).use { provider ->
            val client = provider.signedIn(KotlinStore())
            repeat(20_000) { client.accessToken() } // warm-up (JIT)
            val perCall = (1..11).map {
                val start = System.nanoTime()
                repeat(20_000) { check(client.accessToken().isNotEmpty()) }
                (System.nanoTime() - start) / 20_000.0
            }.sorted()
            println("Kotlin -> FFI accessToken() (suspend) on a fresh token: median %.0f ns per call (11 batches of 20,000)".format(perCall[5]))
            repeat(20_000) { client.freshAccessToken() }
            val sync = (1..11).map {
                val start = System.nanoTime()
                repeat(20_000) { check(client.freshAccessToken()!!.isNotEmpty()) }
                (System.nanoTime() - start) / 20_000.0
            }.sorted()
            println("Kotlin -> FFI freshAccessToken() (no suspension) on a fresh token: median %.0f ns per call (11 batches of 20,000)".format(sync[5]))
            val reader = client.tokenReader()
            repeat(20_000) { reader.freshAccessToken() }
            val jni = (1..11).map {
                val start = System.nanoTime()
                repeat(20_000) { check(reader.freshAccessToken()!!.isNotEmpty()) }
                (System.nanoTime() - start) / 20_000.0
            }.sorted()
            println("Kotlin -> JNI tokenReader().freshAccessToken() on a fresh token: median %.0f ns per call (11 batches of 20,000)".format(jni[5]))
            // Where the time goes: a call that returns a short string (the FFI's own cost per
            // call), beside the token read.
            repeat(20_000) { client.tokenType() }
            val short = (1..11).map {
                val start = System.nanoTime()
                repeat(20_000) { check(client.tokenType()!!.isNotEmpty()) }
                (System.nanoTime() - start) / 20_000.0
            }.sorted()
            println("Kotlin -> FFI tokenType() (a 4-byte string, no suspension): median %.0f ns per call (11 batches of 20,000)".format(short[5]))
        }
    }
}
