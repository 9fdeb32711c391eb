// The local provider (tests/idp) for the Kotlin tests and the benchmark: started here, with a
// small HTTP client that plays the browser through its (auto-approved) login.

import java.io.BufferedReader
import java.io.File
import java.io.InputStreamReader
import java.net.CookieManager
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.security.KeyStore
import java.security.cert.CertificateFactory
import java.time.Duration
import javax.net.ssl.SSLContext
import javax.net.ssl.TrustManagerFactory
import uniffi.sessionkit_ffi.ClientSettings
import uniffi.sessionkit_ffi.ForeignStore
import uniffi.sessionkit_ffi.SessionClient

class TestProvider(accessTtlSeconds: Int) : AutoCloseable {
    private val process: Process
    val issuer: String
    val caPem: String
    /** The provider certificate's public-key pin. */
    val spkiPin: String
    private val tls: SSLContext
    private val browser: HttpClient

    init {
        val dir = File(System.getenv("SESSIONKIT_IDP_DIR") ?: "../../tests/idp")
        val builder = ProcessBuilder("node", "server.mjs").directory(dir).redirectError(ProcessBuilder.Redirect.DISCARD)
        builder.environment()["IDP_AUTO_APPROVE"] = "1"
        builder.environment()["IDP_ACCESS_TTL"] = accessTtlSeconds.toString()
        process = builder.start()
        val line = BufferedReader(InputStreamReader(process.inputStream)).readLine()
        issuer = Regex("\"issuer\":\"([^\"]+)\"").find(line)!!.groupValues[1]
        caPem = File(Regex("\"ca\":\"([^\"]+)\"").find(line)!!.groupValues[1]).readText()
        spkiPin = Regex("\"spkiPin\":\"([^\"]+)\"").find(line)!!.groupValues[1]
        Thread { process.inputStream.transferTo(java.io.OutputStream.nullOutputStream()) }.apply { isDaemon = true }.start()
        val keyStore = KeyStore.getInstance(KeyStore.getDefaultType()).apply { load(null) }
        keyStore.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(caPem.byteInputStream()))
        val trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm()).apply { init(keyStore) }
        tls = SSLContext.getInstance("TLS").apply { init(null, trust.trustManagers, null) }
        browser = newBrowser()
    }

    override fun close() { process.destroy() }

    /** A browser of its own (its own cookies: its own session at the provider). */
    fun newBrowser(): HttpClient = HttpClient.newBuilder().sslContext(tls).cookieHandler(CookieManager())
        .followRedirects(HttpClient.Redirect.NEVER).connectTimeout(Duration.ofSeconds(10)).build()

    fun settings(idleSeconds: ULong = 600u) = ClientSettings(
        issuer = issuer,
        clientId = "sessionkit-test",
        redirectUri = "http://127.0.0.1/callback",
        scopes = listOf("offline_access"),
        postLogoutRedirectUri = "http://127.0.0.1/logged-out",
        idleTimeoutSeconds = idleSeconds,
        absoluteLifetimeSeconds = 3600u,
        warningLeadSeconds = 1u,
        // Lazy refresh, so that the tests decide when a refresh happens.
        backgroundRefresh = false,
        trustOnlyRootPem = caPem,
        // Each client its own lock directory, as separate apps would have: the tests run in one
        // JVM and must not wait for each other's lock (the app + extension test shares one).
        lockDir = java.nio.file.Files.createTempDirectory("sessionkit-lock").toString() + "/locks",
    )

    /** The status of a call to the provider's protected test API with these headers. */
    fun callApi(authorization: String, dpop: String?): Int {
        val builder = HttpRequest.newBuilder(URI("$issuer/__test/api")).header("Authorization", authorization)
        if (dpop != null) builder.header("DPoP", dpop)
        return browser.send(builder.GET().build(), HttpResponse.BodyHandlers.discarding()).statusCode()
    }

    /** Follows the authorization URL through the provider until it redirects back. */
    fun authorize(url: String, browser: HttpClient = this.browser): String {
        var next = url
        repeat(12) {
            val response = browser.send(HttpRequest.newBuilder(URI(next)).GET().build(), HttpResponse.BodyHandlers.discarding())
            val location = response.headers().firstValue("location").orElseThrow()
            if (location.startsWith("http://127.0.0.1")) return location
            next = if (location.startsWith("/")) issuer + location else location
        }
        error("the provider never redirected back")
    }

    /**
     * Plays the user on another device: opens the verification page, submits the code, confirms,
     * and follows the (auto-approved) login to the provider's success page.
     */
    fun approveDevice(verificationUriComplete: String) {
        fun hidden(html: String, name: String): String =
            Regex("name=\"$name\" value=\"([^\"]*)\"").find(html)?.groupValues?.get(1) ?: error("no $name in the device page")
        fun form(vararg pairs: Pair<String, String>) = HttpRequest.BodyPublishers.ofString(
            pairs.joinToString("&") { (k, v) -> "$k=${java.net.URLEncoder.encode(v, Charsets.UTF_8)}" })
        fun post(body: HttpRequest.BodyPublisher) = browser.send(
            HttpRequest.newBuilder(URI("$issuer/device")).header("content-type", "application/x-www-form-urlencoded")
                .POST(body).build(), HttpResponse.BodyHandlers.ofString())
        var page = browser.send(HttpRequest.newBuilder(URI(verificationUriComplete)).GET().build(), HttpResponse.BodyHandlers.ofString()).body()
        page = post(form("xsrf" to hidden(page, "xsrf"), "user_code" to hidden(page, "user_code"))).body()
        var response = post(form("xsrf" to hidden(page, "xsrf"), "user_code" to hidden(page, "user_code"), "confirm" to "yes"))
        repeat(12) {
            val location = response.headers().firstValue("location").orElse(null) ?: return@repeat
            val next = if (location.startsWith("/")) issuer + location else location
            response = browser.send(HttpRequest.newBuilder(URI(next)).GET().build(), HttpResponse.BodyHandlers.ofString())
        }
        check(response.statusCode() == 200) { "the device sign-in ended with ${response.statusCode()}" }
    }

    suspend fun signedIn(store: ForeignStore, idleSeconds: ULong = 600u): SessionClient {
        val client = SessionClient.create(settings(idleSeconds), store)
        val request = client.beginLogin()
        client.completeLogin(request, authorize(request.url()))
        return client
    }
}
