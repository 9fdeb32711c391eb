// fetch for the driver in the browser (see web.rs). Resolves to [status, [[name, value], ...],
// body bytes]; rejects with a plain string naming the failure kind: "timeout", "network",
// "too_large". Never includes a URL or a body in what it reports.
export async function httpFetch(method, url, headers, body, timeoutMs, maxBytes, keptHeaders) {
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body ?? undefined,
      // A token endpoint never needs to redirect, cookies or a referrer; caching could keep tokens.
      redirect: 'error',
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw error && (error.name === 'TimeoutError' || error.name === 'AbortError') ? 'timeout' : 'network';
  }
  const length = Number(response.headers.get('content-length'));
  if (length > maxBytes) throw 'too_large';
  // Read in chunks and stop at the limit, so an oversized body never fills memory.
  const chunks = [];
  let total = 0;
  try {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        reader.cancel().catch(() => {});
        throw 'too_large';
      }
      chunks.push(value);
    }
  } catch (error) {
    throw error === 'too_large' ? error : (error && error.name === 'TimeoutError' ? 'timeout' : 'network');
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  // Cross-origin, only the headers the server exposes are readable (Date, Retry-After often not).
  const kept = [];
  for (const name of keptHeaders) {
    const value = response.headers.get(name);
    if (value !== null) kept.push([name, value]);
  }
  return [response.status, kept, bytes];
}
