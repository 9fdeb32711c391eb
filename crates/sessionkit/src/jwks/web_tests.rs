//! The WebCrypto signature check in headless Chromium (wasm-bindgen-test), with keys and
//! tokens made by WebCrypto in the test itself.

use sessionkit_core::oidc::id_token::{JwsAlgorithm, SignatureVerifier, split_jws};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

use super::*;

wasm_bindgen_test_configure!(run_in_browser);

// Makes a key pair for `alg`, and returns [jwks JSON with its public key under `kid`, a compact
// JWS signed with it].
#[wasm_bindgen(inline_js = r#"
const b64u = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const ALGS = {
  RS256: [{ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5' }],
  PS384: [{ name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-384' }, { name: 'RSA-PSS', saltLength: 48 }],
  ES256: [{ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }],
  ES384: [{ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }],
  EdDSA: [{ name: 'Ed25519' }, { name: 'Ed25519' }],
};
export async function signed(alg, kid, use) {
  const [gen, sign] = ALGS[alg];
  const pair = await crypto.subtle.generateKey(gen, true, ['sign', 'verify']);
  const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
  const header = b64u(new TextEncoder().encode(JSON.stringify({ alg, kid, typ: 'JWT' })));
  const payload = b64u(new TextEncoder().encode(JSON.stringify({ sub: 'alice' })));
  const input = `${header}.${payload}`;
  const signature = await crypto.subtle.sign(sign, pair.privateKey, new TextEncoder().encode(input));
  const published = { ...jwk, kid, alg, use: use || 'sig', key_ops: undefined, ext: undefined };
  return [JSON.stringify({ keys: [published, { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' }] }), `${input}.${b64u(signature)}`];
}
"#)]
extern "C" {
    async fn signed(alg: &str, kid: &str, key_use: &str) -> JsValue;
}

async fn token_and_keys(alg: &str, kid: &str, key_use: &str) -> (KeySet, String) {
    let pair = js_sys::Array::from(&signed(alg, kid, key_use).await);
    let jwks = pair.get(0).as_string().expect("jwks");
    let token = pair.get(1).as_string().expect("token");
    (KeySet::parse(jwks.as_bytes()).expect("parsed"), token)
}

fn check(verifier: &Preverified, token: &str) -> Result<(), SignatureError> {
    let parts = split_jws(token).expect("a well-formed JWS");
    verifier.verify(&parts.header, parts.signing_input, &parts.signature)
}

#[wasm_bindgen_test]
async fn good_signatures_pass_for_every_supported_algorithm() {
    for alg in ["RS256", "PS384", "ES256", "ES384", "EdDSA"] {
        let (keys, token) = token_and_keys(alg, "k1", "sig").await;
        assert_eq!(keys.len(), 1, "{alg}: the oct key is dropped");
        let verifier = keys.preverify(Some(&token)).await;
        assert_eq!(check(&verifier, &token), Ok(()), "{alg}");
        assert!(JwsAlgorithm::from_name(alg).is_some());
    }
}

#[wasm_bindgen_test]
async fn a_changed_payload_or_signature_fails() {
    let (keys, token) = token_and_keys("ES256", "k1", "sig").await;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = "eyJzdWIiOiJtYWxsb3J5In0".to_owned(); // {"sub":"mallory"}
    let forged = parts.join(".");
    let verifier = keys.preverify(Some(&forged)).await;
    assert_eq!(check(&verifier, &forged), Err(SignatureError::Invalid));

    // A verifier answers only for the token it checked.
    let verifier = keys.preverify(Some(&token)).await;
    assert_eq!(check(&verifier, &forged), Err(SignatureError::Invalid));
}

#[wasm_bindgen_test]
async fn an_unknown_kid_asks_for_a_refetch_and_a_foreign_key_fails() {
    let (keys, _) = token_and_keys("RS256", "k1", "sig").await;
    let (_, other_token) = token_and_keys("RS256", "k2", "sig").await;
    let verifier = keys.preverify(Some(&other_token)).await;
    assert_eq!(check(&verifier, &other_token), Err(SignatureError::UnknownKey));

    // Same kid, different key: the signature does not verify.
    let (_, impostor) = token_and_keys("RS256", "k1", "sig").await;
    let verifier = keys.preverify(Some(&impostor)).await;
    assert_eq!(check(&verifier, &impostor), Err(SignatureError::Invalid));
}

#[wasm_bindgen_test]
async fn encryption_keys_and_symmetric_keys_are_never_used() {
    let (keys, _) = token_and_keys("RS256", "k1", "enc").await;
    assert_eq!(keys.len(), 0);
    assert!(KeySet::parse(b"not json").is_err());
    assert!(KeySet::parse(&vec![b' '; crate::jwks::MAX_JWKS_BYTES + 1]).is_err());
}

#[wasm_bindgen_test]
async fn a_token_response_without_an_id_token_gives_a_verifier_that_accepts_nothing() {
    let (keys, token) = token_and_keys("ES256", "k1", "sig").await;
    let verifier = verifier_for(&keys, br#"{"access_token":"x","token_type":"Bearer"}"#).await;
    assert_eq!(check(&verifier, &token), Err(SignatureError::Invalid));
    let body = format!(r#"{{"access_token":"x","id_token":"{token}"}}"#);
    let verifier = verifier_for(&keys, body.as_bytes()).await;
    assert_eq!(check(&verifier, &token), Ok(()));
}
