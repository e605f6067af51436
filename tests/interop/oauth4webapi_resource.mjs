// panva's oauth4webapi calling a protected resource with a DPoP-bound access token
// (protectedResourceRequest), driven by tests/resource/test_demo_api.py against the demo API.
//
// Input (environment):
//   CORRIDOR_RESOURCE_URL  the URL to GET, e.g. https://127.0.0.1:PORT/accounts
//   CORRIDOR_ACCESS_TOKEN  a DPoP-bound access token for that resource
//   CORRIDOR_DPOP_JWK      the private JWK (ES256, P-256) the token is bound to, JSON
//   CORRIDOR_CLIENT_ID     the client_id the token was issued to
// TLS trust comes from NODE_EXTRA_CA_CERTS; no check of the library is switched off.
//
// Output (one JSON object per line):
//   stdout  {"result": {"calls": [{status, body, retries}, ...], "dpop_jkt": "..."}}
//   stdout  {"error": {...}}   on any failure (exit status 1)

import { emit, env, run } from './lines.mjs'
import * as oauth from 'oauth4webapi'

async function main() {
  const url = new URL(env('CORRIDOR_RESOURCE_URL'))
  const accessToken = env('CORRIDOR_ACCESS_TOKEN')
  const { kty, crv, x, y, d } = JSON.parse(env('CORRIDOR_DPOP_JWK'))
  const client = { client_id: env('CORRIDOR_CLIENT_ID') }

  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' }
  const privateKey = await crypto.subtle.importKey('jwk', { kty, crv, x, y, d }, algorithm, false, ['sign'])
  // The library puts the public key in the proof header, so it must be extractable.
  const publicKey = await crypto.subtle.importKey('jwk', { kty, crv, x, y }, algorithm, true, ['verify'])
  const dpop = oauth.DPoP(client, { privateKey, publicKey })

  // RFC 9449 9: the resource server demands its own nonce; the library caches the DPoP-Nonce
  // of the challenge, so one retry with a fresh proof succeeds, and later calls need none.
  async function get() {
    let retries = 0
    const attempt = () =>
      oauth.protectedResourceRequest(accessToken, 'GET', url, new Headers({ accept: 'application/json' }), null, {
        DPoP: dpop,
      })
    let response
    try {
      response = await attempt()
    } catch (err) {
      if (!oauth.isDPoPNonceError(err)) throw err
      retries += 1
      response = await attempt()
    }
    return { status: response.status, body: await response.json(), retries }
  }

  const calls = [await get(), await get()]
  emit({ result: { calls, dpop_jkt: await dpop.calculateThumbprint() } })
}

run(main, (err) => ({
  status: err?.status ?? err?.response?.status,
  challenges: err instanceof oauth.WWWAuthenticateChallengeError ? err.cause : undefined,
}))
