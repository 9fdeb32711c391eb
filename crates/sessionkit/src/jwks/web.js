// WebCrypto for the ID token signature check (see web.rs). Resolves to true only for a valid
// signature; any failure (unsupported curve, malformed key) is false, never an exception.
const PARAMS = {
  RS256: [{ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5' }],
  RS384: [{ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' }, { name: 'RSASSA-PKCS1-v1_5' }],
  RS512: [{ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-512' }, { name: 'RSASSA-PKCS1-v1_5' }],
  PS256: [{ name: 'RSA-PSS', hash: 'SHA-256' }, { name: 'RSA-PSS', saltLength: 32 }],
  PS384: [{ name: 'RSA-PSS', hash: 'SHA-384' }, { name: 'RSA-PSS', saltLength: 48 }],
  PS512: [{ name: 'RSA-PSS', hash: 'SHA-512' }, { name: 'RSA-PSS', saltLength: 64 }],
  ES256: [{ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }],
  ES384: [{ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }],
  EdDSA: [{ name: 'Ed25519' }, { name: 'Ed25519' }],
};

export async function verifyJws(jwkJson, alg, signingInput, signature) {
  const params = PARAMS[alg];
  if (!params) return false;
  try {
    const key = await crypto.subtle.importKey('jwk', JSON.parse(jwkJson), params[0], false, ['verify']);
    return await crypto.subtle.verify(params[1], key, signature, signingInput);
  } catch (_) {
    return false;
  }
}
