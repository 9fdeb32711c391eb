// SessionKit's Kotlin binding on the JVM, against the real local provider (tests/idp) over TLS.

import java.util.Collections
import java.util.concurrent.ConcurrentHashMap
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import java.math.BigInteger
import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.util.Base64
import java.util.UUID
import java.util.concurrent.atomic.AtomicInteger
import uniffi.sessionkit_ffi.AccountList
import uniffi.sessionkit_ffi.DpopPublicKeyInfo
import uniffi.sessionkit_ffi.DeviceCode
import uniffi.sessionkit_ffi.DeviceCodeDisplay
import uniffi.sessionkit_ffi.DpopMode
import uniffi.sessionkit_ffi.LoginOptions
import uniffi.sessionkit_ffi.DpopSigner
import uniffi.sessionkit_ffi.EventListener
import uniffi.sessionkit_ffi.ForeignStore
import uniffi.sessionkit_ffi.PinnedHost
import uniffi.sessionkit_ffi.SessionClient
import uniffi.sessionkit_core.EndReason
import uniffi.sessionkit_core.ExpiryReason
import uniffi.sessionkit_core.SessionEvent
import uniffi.sessionkit_ffi.SessionKitException
import uniffi.sessionkit_ffi.StoreFailure
import uniffi.sessionkit_ffi.events
import uniffi.sessionkit_ffi.tokenReader

/** A store in Kotlin: really used by the core (writes are counted). */
class KotlinStore : ForeignStore {
    val values = ConcurrentHashMap<String, String>()
    val saves = java.util.concurrent.atomic.AtomicInteger()
    override fun load(key: String): String? = values[key]
    override fun save(key: String, value: String) { saves.incrementAndGet(); values[key] = value }
    override fun delete(key: String) { values.remove(key) }
}

/** A store that always fails, like a locked Keychain. */
class FailingStore : ForeignStore {
    override fun load(key: String): String? = throw StoreFailure.Failed("locked")
    override fun save(key: String, value: String) = throw StoreFailure.Failed("locked")
    override fun delete(key: String) = throw StoreFailure.Failed("locked")
}

/**
 * DPoP keys kept by the app (the JVM's provider here, the Android Keystore in an app): the
 * private key never leaves this class; the core gets the public key and signatures.
 */
class KotlinSigner : DpopSigner {
    val keys = ConcurrentHashMap<String, KeyPair>()
    val signatures = AtomicInteger()

    private fun coordinate(value: BigInteger): String {
        val bytes = value.toByteArray().let { if (it.size > 32) it.copyOfRange(it.size - 32, it.size) else ByteArray(32 - it.size) + it }
        return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes)
    }

    override fun createKey(): DpopPublicKeyInfo {
        val pair = KeyPairGenerator.getInstance("EC").apply { initialize(ECGenParameterSpec("secp256r1")) }.generateKeyPair()
        val handle = "dpop-${UUID.randomUUID()}"
        keys[handle] = pair
        val point = (pair.public as ECPublicKey).w
        return DpopPublicKeyInfo(handle = handle, x = coordinate(point.affineX), y = coordinate(point.affineY))
    }

    override fun sign(handle: String, input: ByteArray): ByteArray {
        val pair = keys[handle] ?: throw StoreFailure.KeyMissing("no key $handle")
        signatures.incrementAndGet()
        // P1363: the raw r || s that JWS wants (the default format is DER).
        return Signature.getInstance("SHA256withECDSAinP1363Format").run { initSign(pair.private); update(input); sign() }
    }

    override fun deleteKey(handle: String) { keys.remove(handle) }
}

class Recorder : EventListener {
    val events: MutableList<SessionEvent> = Collections.synchronizedList(mutableListOf())
    override fun onEvent(event: SessionEvent) { events.add(event) }
}

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SessionClientTest {
    private lateinit var provider: TestProvider

    @BeforeAll
    fun startProvider() { provider = TestProvider(accessTtlSeconds = 2) }

    @AfterAll
    fun stopProvider() { provider.close() }

    private val issuer get() = provider.issuer
    private fun settings(idleSeconds: ULong = 600u) = provider.settings(idleSeconds)
    private fun authorize(url: String) = provider.authorize(url)
    private suspend fun signedIn(store: ForeignStore, idleSeconds: ULong = 600u) = provider.signedIn(store, idleSeconds)

    @Test
    fun `sign-in, refresh once for many coroutines, events, and logout`() = runBlocking {
        val store = KotlinStore()
        val recorder = Recorder()
        val client = SessionClient.create(settings(), store)
        client.setListener(recorder)
        val request = client.beginLogin()
        client.completeLogin(request, authorize(request.url()))
        val status = client.status()!!
        assertEquals("alice", status.subject)
        assertTrue(status.hasRefreshToken && status.accessExpiresAt.isAfter(status.startedAt), "the core's status, as Instants")
        assertTrue(status.idleDeadline <= status.absoluteDeadline)
        assertTrue(store.saves.get() > 0, "the Kotlin store received the session")
        assertEquals(client.freshAccessToken(), client.accessToken(), "the fresh token needs no suspension")
        val reader = client.tokenReader()
        assertEquals(client.freshAccessToken(), reader.freshAccessToken(), "the JNI read answers as the FFI call")
        // Eight threads reading at once, through this reader and a second one of the same client.
        val fresh = client.freshAccessToken()
        val second = client.tokenReader()
        val wrong = java.util.concurrent.atomic.AtomicInteger()
        val threads = (1..8).map { i ->
            Thread { repeat(5_000) { if ((if (i % 2 == 0) reader else second).freshAccessToken() != fresh) wrong.incrementAndGet() } }
        }
        threads.forEach { it.start() }
        threads.forEach { it.join() }
        assertEquals(0, wrong.get(), "every read on every thread gave the token")

        delay(2300) // the 2 s access token has expired: 50 coroutines ask at once
        assertNull(client.freshAccessToken(), "an expired token is not handed out")
        assertNull(reader.freshAccessToken(), "nor by the JNI read")
        val tokens = (1..50).map { async { client.accessToken() } }.awaitAll()
        assertEquals(1, tokens.toSet().size, "one refresh, shared by every caller")
        assertEquals(tokens[0], reader.freshAccessToken(), "the JNI read has the refreshed token")
        delay(200)
        assertTrue(recorder.events.any { it is SessionEvent.LoggedIn && it.subject == "alice" })
        val refreshed = recorder.events.filterIsInstance<SessionEvent.Refreshed>()
        assertEquals(1, refreshed.size, "exactly one refresh")
        assertTrue(refreshed[0].accessExpiresAt.isAfter(java.time.Instant.now()), "the event says when the new token expires")

        val endSession = client.logout()
        assertNotNull(endSession)
        assertTrue(endSession!!.url().startsWith("$issuer/session/end?"))
        assertTrue(endSession.state().length >= 43, "the post-logout state is there to compare")
        assertTrue(endSession.url().contains("state=${endSession.state()}"))
        assertFalse(endSession.toString().contains("id_token_hint"), "the URL stays out of toString()")
        assertTrue(store.values.isEmpty(), "logout wiped the Kotlin store")
        val error = assertThrows<SessionKitException.ReauthenticationRequired> { runBlocking { client.accessToken() } }
        assertFalse(error.message!!.contains(tokens[0]), "no token in the message")
        assertNull(reader.freshAccessToken(), "signed out: nothing to read")
        client.close()
        assertNull(reader.freshAccessToken(), "a reader outliving its client reads nothing")
    }

    @Test
    fun `DPoP with the app's own signer - bound tokens, a proof per API call, the key gone at logout`() = runBlocking {
        val signer = KotlinSigner()
        val client = SessionClient.create(settings(), KotlinStore(), signer)
        val request = client.beginLogin()
        assertTrue(request.url().contains("dpop_jkt="), "the code is bound to the Kotlin key")
        client.completeLogin(request, authorize(request.url()))
        assertEquals("DPoP", client.tokenType())
        assertEquals(1, signer.keys.size)
        assertTrue(signer.signatures.get() >= 1, "the code exchange was signed in Kotlin")

        val api = "$issuer/__test/api"
        val headers = client.authorize("GET", api)
        assertTrue(headers.authorization().startsWith("DPoP "))
        assertNotNull(headers.dpop())
        assertFalse(headers.toString().contains(headers.dpop()!!), "the proof stays out of toString()")
        assertEquals(200, provider.callApi(headers.authorization(), headers.dpop()))
        assertEquals(401, provider.callApi(headers.authorization(), headers.dpop()), "a proof is single-use")
        assertEquals(401, provider.callApi("Bearer ${client.accessToken()}", null), "the token alone is refused")
        assertFalse(client.noteApiResponse(api, 401u.toUShort(), "DPoP error=\"invalid_token\"", null))

        delay(2300) // the refresh is signed with the same Kotlin key
        val signed = signer.signatures.get()
        client.accessToken()
        assertTrue(signer.signatures.get() > signed)
        val fresh = client.authorize("POST", "$issuer/__test/api")
        assertNotNull(fresh.dpop())

        client.logout()
        assertTrue(signer.keys.isEmpty(), "the key ends with the session")
    }

    @Test
    fun `a DPoP key the app's store lost ends the session with a sign-in-again error`() = runBlocking {
        val signer = KotlinSigner()
        val client = SessionClient.create(settings(), KotlinStore(), signer)
        val request = client.beginLogin()
        client.completeLogin(request, authorize(request.url()))
        signer.keys.clear() // the Keystore invalidated it
        val error = assertThrows<SessionKitException.ReauthenticationRequired> {
            runBlocking { client.authorize("GET", "$issuer/__test/api") }
        }
        assertTrue(error.message!!.contains("no longer in its key store"), error.message)
        assertNull(client.status(), "the session ended")
    }

    @Test
    fun `events as a Flow - every collector gets them, and cancelling one ends its subscription`() = runBlocking {
        SessionClient.create(settings(), KotlinStore()).use { client ->
            val collected = Collections.synchronizedList(mutableListOf<SessionEvent>())
            // Undispatched: each collection has subscribed when launch/async return.
            val collector = launch(start = CoroutineStart.UNDISPATCHED) { client.events().collect { collected.add(it) } }
            val loggedOut = async(start = CoroutineStart.UNDISPATCHED) { client.events().first { it is SessionEvent.LoggedOut } }
            val request = client.beginLogin()
            client.completeLogin(request, authorize(request.url()))
            withTimeout(5_000) { while (collected.none { it is SessionEvent.LoggedIn }) delay(20) }
            collector.cancelAndJoin()
            // A next() cancelled while waiting leaves its stream usable (no lock kept).
            client.subscribe().use { stream ->
                assertNull(withTimeoutOrNull(50) { stream.next() })
                client.logout()
                assertTrue(withTimeout(5_000) { stream.next() } is SessionEvent.LoggedOut)
                // cancel() (what Swift's AsyncStream calls) wakes a waiting next() with null.
                val waiting = async(start = CoroutineStart.UNDISPATCHED) { stream.next() }
                stream.cancel()
                assertNull(withTimeout(5_000) { waiting.await() }, "a cancelled stream ends")
                assertNull(stream.next())
            }
            val event = withTimeout(5_000) { loggedOut.await() }
            assertTrue(event is SessionEvent.LoggedOut)
        }
    }

    @Test
    fun `step-up and account-choice options reach the provider`() = runBlocking {
        val client = SessionClient.create(settings(), KotlinStore())
        val options = LoginOptions(prompt = "login", loginHint = "bob", maxAgeSeconds = 60u, acrValues = "urn:example:mfa")
        val request = client.beginLogin(options)
        val url = request.url()
        for (expected in listOf("prompt=login", "login_hint=bob", "max_age=60", "acr_values=urn%3Aexample%3Amfa")) {
            assertTrue(url.contains(expected), "$expected in $url")
        }
        // Bob's browser: the other tests' browser stays signed in as alice at the provider.
        client.completeLogin(request, provider.authorize(url, provider.newBrowser()))
        assertEquals("bob", client.status()!!.subject, "the provider signed in the hinted account")
        // What the step-up met, for the app to check: the ID token's acr and auth_time.
        assertEquals("urn:example:mfa", client.status()!!.acr)
        assertNotNull(client.status()!!.authenticatedAt)
    }

    @Test
    fun `a redirect sign-in survives the app being killed and completes once`() = runBlocking {
        val store = KotlinStore()
        val first = SessionClient.create(settings(), store)
        val url = first.beginRedirectLogin()
        assertTrue(store.values.keys.any { it.endsWith("|pending") }, "the pending sign-in is sealed in the store")
        first.destroy() // the app is killed while the user is at the provider
        val callback = authorize(url)
        val restarted = SessionClient.create(settings(), store)
        restarted.completeRedirectLogin(callback)
        assertEquals("alice", restarted.status()!!.subject)
        assertThrows<SessionKitException.InvalidInput> { runBlocking { restarted.completeRedirectLogin(callback) } }
        Unit
    }

    @Test
    fun `the device flow through the FFI`() = runBlocking {
        val client = SessionClient.create(settings(), KotlinStore())
        val shown = Collections.synchronizedList(mutableListOf<DeviceCode>())
        val approval = kotlinx.coroutines.CompletableDeferred<Unit>()
        val display = object : DeviceCodeDisplay {
            override fun show(code: DeviceCode) {
                shown.add(code)
                // The user on another device; a failure there fails the test with its cause.
                runCatching { provider.approveDevice(code.verificationUriComplete!!) }
                    .onSuccess { approval.complete(Unit) }.onFailure { approval.completeExceptionally(it) }
            }
        }
        withTimeout(30_000) {
            val login = async { client.loginWithDevice(display) }
            approval.await()
            login.await()
        }
        assertEquals(1, shown.size)
        assertTrue(shown[0].userCode.isNotEmpty() && shown[0].expiresAt.isAfter(java.time.Instant.now()))
        assertEquals("alice", client.status()!!.subject)
        assertEquals("DPoP", client.tokenType(), "each poll carried a proof")
    }

    @Test
    fun `DPoP off gives Bearer tokens and never asks the signer`() = runBlocking {
        val signer = KotlinSigner()
        val client = SessionClient.create(settings().copy(dpop = DpopMode.OFF), KotlinStore(), signer)
        val request = client.beginLogin()
        client.completeLogin(request, authorize(request.url()))
        assertEquals("Bearer", client.tokenType())
        val headers = client.authorize("GET", "$issuer/__test/api")
        assertNull(headers.dpop())
        assertEquals(200, provider.callApi(headers.authorization(), null))
        assertEquals(0, signer.signatures.get())
        assertTrue(signer.keys.isEmpty())
    }

    @Test
    fun `a store that throws is unavailable, never empty, and the session survives`() = runBlocking {
        val failing = assertThrows<SessionKitException.StorageUnavailable> {
            runBlocking { SessionClient.create(settings(), FailingStore()) }
        }
        assertTrue(failing.message!!.contains("locked"))
        // A store that starts failing after sign-in. Unreadable: no refresh is sent (the store
        // might hold a newer refresh token than this process), the session is kept, the caller
        // is told to retry. Writes failing: the refresh goes through, the session continues in
        // memory, and the app hears of it.
        val flaky = object : ForeignStore {
            @Volatile var readsFail = false
            @Volatile var writesFail = false
            val inner = KotlinStore()
            override fun load(key: String) = if (readsFail) throw StoreFailure.Failed("locked") else inner.load(key)
            override fun save(key: String, value: String) = if (writesFail) throw StoreFailure.Failed("locked") else inner.save(key, value)
            override fun delete(key: String) = if (writesFail) throw StoreFailure.Failed("locked") else inner.delete(key)
        }
        val recorder = Recorder()
        val client = signedIn(flaky)
        client.setListener(recorder)
        flaky.readsFail = true
        delay(2300)
        val retry = assertThrows<SessionKitException.RetryLater> { runBlocking { client.accessToken() } }
        assertTrue(retry.message!!.contains("nothing was sent"), retry.message)
        assertNotNull(client.status(), "the session is kept")
        flaky.readsFail = false
        delay(1100) // the failed attempt backs off for a second, as after any transient failure
        flaky.writesFail = true
        val token = client.accessToken()
        assertTrue(token.isNotEmpty(), "refreshed although the store cannot be written")
        delay(200)
        assertTrue(recorder.events.any { it is SessionEvent.StorageProblem && it.problem == uniffi.sessionkit_core.StorageProblem.UNAVAILABLE }, "the app heard of it")
        // Once the store takes writes again, the rotated token reaches it (retried by the timer).
        flaky.writesFail = false
        val written = withTimeoutOrNull(15_000) {
            while (flaky.inner.values.values.none { it.contains(token) }) delay(100)
            true
        }
        assertNotNull(written, "the refreshed session was written once the store worked again")
    }

    @Test
    fun `a cancelled call does not wedge the session`() = runBlocking {
        val client = signedIn(KotlinStore())
        delay(2300)
        val gaveUp = withTimeoutOrNull(1) { client.accessToken() }
        assertNull(gaveUp, "the first call was cancelled")
        delay(1500)
        assertTrue(client.accessToken().isNotEmpty())
    }

    @Test
    fun `two clients with one store and one lock directory share one session`() = runBlocking {
        val lockDir = java.nio.file.Files.createTempDirectory("sessionkit-kotlin-lock").toFile()
        val shared = KotlinStore()
        val settings = settings().copy(lockDir = lockDir.path + "/locks")
        val app = SessionClient.create(settings, shared)
        val request = app.beginLogin()
        app.completeLogin(request, authorize(request.url()))
        // The extension starts later and finds the app's session.
        val extension = SessionClient.create(settings, shared)
        assertEquals(app.status()!!.sessionId, extension.status()!!.sessionId)
        val locks = java.io.File(lockDir, "locks")
        val lockFiles = locks.listFiles()!!.filter { it.name.endsWith(".lock") }
        assertEquals(1, lockFiles.size, "one lock file in the given directory")
        val perms = java.nio.file.Files.getPosixFilePermissions(locks.toPath())
        assertEquals(java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"), perms)
        // Both refresh the expired token at once: one refresh, the other adopts its result.
        delay(2300)
        val tokens = listOf(async { app.accessToken() }, async { extension.accessToken() }).awaitAll()
        assertEquals(tokens[0], tokens[1], "one refresh for both")
        // A logout in the app signs the extension out too: its next call, a quarter of a
        // second later, sees the lock's generation counter moved and reads the empty store.
        app.logout()
        assertTrue(shared.values.isEmpty())
        delay(300)
        assertNull(extension.freshAccessToken())
        assertThrows<SessionKitException.ReauthenticationRequired> { runBlocking { extension.accessToken() } }
        assertNull(extension.status())
        extension.syncFromStore()
        lockDir.deleteRecursively()
        Unit
    }

    @Test
    fun `idle timeout ends the session`() = runBlocking {
        val recorder = Recorder()
        val client = signedIn(KotlinStore(), idleSeconds = 2u)
        client.setListener(recorder)
        delay(3000)
        assertTrue(recorder.events.any { it is SessionEvent.ExpiringSoon && it.reason == ExpiryReason.IDLE && it.timeLeft > java.time.Duration.ZERO })
        assertTrue(recorder.events.any { it is SessionEvent.Expired && it.reason == EndReason.IDLE_TIMEOUT })
        assertThrows<SessionKitException.ReauthenticationRequired> { runBlocking { client.accessToken() } }
        Unit
    }

    @Test
    fun `errors map to one exception per action`() = runBlocking {
        val http = settings().copy(issuer = "http://127.0.0.1:1")
        assertThrows<SessionKitException.Misconfigured> { runBlocking { SessionClient.create(http, KotlinStore()) } }
        val down = settings().copy(issuer = "https://127.0.0.1:1")
        val retry = assertThrows<SessionKitException.RetryLater> { runBlocking { SessionClient.create(down, KotlinStore()) } }
        assertTrue(retry.message!!.isNotEmpty())
        val client = SessionClient.create(settings(), KotlinStore())
        val request = client.beginLogin()
        val forged = authorize(request.url()).replace("state=", "state=x")
        assertThrows<SessionKitException.InvalidInput> { runBlocking { client.completeLogin(request, forged) } }
        assertThrows<SessionKitException.ReauthenticationRequired> { runBlocking { client.accessToken() } }
        Unit
    }

    @Test
    fun `pins from Kotlin, the server's key with a backup works, other keys are refused, one pin is not enough`() = runBlocking {
        val backup = "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        val other = "sha256/BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
        fun pinned(vararg pins: String) = settings().copy(pins = listOf(PinnedHost("127.0.0.1", pins.toList())))
        val client = SessionClient.create(pinned(provider.spkiPin, backup), KotlinStore())
        val request = client.beginLogin()
        client.completeLogin(request, authorize(request.url()))
        assertNotNull(client.accessToken())
        val refused = assertThrows<SessionKitException.InvalidInput> {
            runBlocking { SessionClient.create(pinned(backup, other), KotlinStore()) }
        }
        assertTrue(refused.message!!.contains("pinned"), refused.message)
        val single = assertThrows<SessionKitException.Misconfigured> {
            runBlocking { SessionClient.create(pinned(provider.spkiPin), KotlinStore()) }
        }
        assertTrue(single.message!!.contains("backup"), single.message)
    }
    @Test
    fun `two accounts on one store are listed, switched, each signs out alone, and are remembered`() = runBlocking {
        val store = KotlinStore()
        val accounts = AccountList(settings(), store)
        val work = accounts.open("work")
        val personal = accounts.switchTo("personal")
        for ((client, user) in listOf(work to "alice", personal to "bob")) {
            val request = client.beginLogin(LoginOptions(loginHint = user))
            client.completeLogin(request, provider.authorize(request.url(), provider.newBrowser()))
        }
        assertEquals("alice", work.status()!!.subject)
        assertEquals("bob", personal.status()!!.subject)
        assertEquals(listOf("work", "personal"), accounts.names())
        assertEquals("personal", accounts.current())
        val personalToken = personal.accessToken()
        // A second list over the same store (another part of the app): the same accounts, the
        // same current one, the same sessions.
        val secondList = AccountList(settings(), store)
        assertEquals(listOf("work", "personal"), secondList.names())
        assertEquals("personal", secondList.current())
        assertEquals(personalToken, secondList.open("personal").accessToken(), "one session, whichever list opened it")

        val end = accounts.remove("work")
        assertNotNull(end, "the provider's end-session page for the work account")
        assertThrows<SessionKitException.ReauthenticationRequired> { runBlocking { work.accessToken() } }
        assertEquals(personalToken, personal.accessToken(), "the personal session is untouched")
        val headers = personal.authorize("GET", "$issuer/__test/api")
        assertEquals(200, provider.callApi(headers.authorization(), headers.dpop()))
        assertEquals(listOf("personal"), accounts.names())
        assertTrue(store.values.keys.none { it.contains("|account|work") }, "nothing of the work account is left")
        assertThrows<SessionKitException.Misconfigured> { runBlocking { accounts.open("no/slashes") } }

        val restarted = AccountList(settings(), store)
        assertEquals("personal", restarted.current())
        assertEquals("bob", restarted.open("personal").status()!!.subject)
    }
}
