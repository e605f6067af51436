// A FAPI 2.0 client built only from panva's oauth4webapi (a certified FAPI 2.0 RP),
// driven by tests/interop/test_oauth4webapi.py against our authorization server.
//
// Input (environment):
//   CORRIDOR_ISSUER        the issuer identifier, e.g. https://localhost:PORT
//   CORRIDOR_CLIENT_ID     the registered client_id
//   CORRIDOR_CLIENT_JWK    the client's private signing JWK (ES256), JSON
//   CORRIDOR_REDIRECT_URI  the registered redirect URI
//   CORRIDOR_SCOPE         the scope to request
// TLS trust comes from NODE_EXTRA_CA_CERTS; no check of the library is switched off.
//
// Protocol (one JSON object per line):
//   stdout  {"authorization_url": "..."}         after PAR
//   stdin   the callback URL (the authorization response), one line
//   stdout  {"result": {...}}                      at the end
//   stdout  {"error": {...}}                       on any failure (exit status 1)

import { emit, env, readLine, run } from './lines.mjs'
import * as oauth from 'oauth4webapi'




const retries = {}

// RFC 9449 8: the server demands its nonce; oauth4webapi caches the DPoP-Nonce of the
// failed response, so one retry with a fresh proof (and a fresh assertion) succeeds.
async function withNonceRetry(step, attempt) {
  try {
    return await attempt()
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err
    retries[step] = (retries[step] ?? 0) + 1
    return await attempt()
  }
}

async function main() {
  const issuer = new URL(env('CORRIDOR_ISSUER'))
  const clientId = env('CORRIDOR_CLIENT_ID')
  const redirectUri = env('CORRIDOR_REDIRECT_URI')
  const scope = env('CORRIDOR_SCOPE')
  const { kty, crv, x, y, d, kid } = JSON.parse(env('CORRIDOR_CLIENT_JWK'))

  // Discovery (OIDC), with the library's issuer check.
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer))

  const client = {
    client_id: clientId,
    token_endpoint_auth_method: 'private_key_jwt',
    id_token_signed_response_alg: 'ES256',
  }
  const clientKey = await crypto.subtle.importKey(
    'jwk',
    { kty, crv, x, y, d },
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  )
  // private_key_jwt; oauth4webapi v3 sets aud to the issuer identifier (a string).
  const clientAuth = oauth.PrivateKeyJwt({ key: clientKey, kid })

  // A fresh DPoP key pair (the private key stays non-extractable).
  const dpopKeys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
    'verify',
  ])
  const dpop = oauth.DPoP(client, dpopKeys)

  // PAR with PKCE S256 and a DPoP proof.
  const codeVerifier = oauth.generateRandomCodeVerifier()
  const codeChallenge = await oauth.calculatePKCECodeChallenge(codeVerifier)
  const state = oauth.generateRandomState()
  const nonce = oauth.generateRandomNonce()
  const parameters = new URLSearchParams({
    response_type: 'code',
    redirect_uri: redirectUri,
    scope,
    state,
    nonce,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
  })
  const pushed = await withNonceRetry('par', async () =>
    oauth.processPushedAuthorizationResponse(
      as,
      client,
      await oauth.pushedAuthorizationRequest(as, client, clientAuth, parameters, { DPoP: dpop }),
    ),
  )

  const authorizationUrl = new URL(as.authorization_endpoint)
  authorizationUrl.searchParams.set('client_id', clientId)
  authorizationUrl.searchParams.set('request_uri', pushed.request_uri)
  emit({ authorization_url: authorizationUrl.href })

  // The authorization response: iss (RFC 9207) and state are checked by the library.
  const callbackUrl = new URL(await readLine())
  const callbackParameters = oauth.validateAuthResponse(as, client, callbackUrl, state)

  // The code exchange, DPoP-bound; the ID token is validated (signature, iss, aud, nonce).
  let rawTokenType
  const tokens = await withNonceRetry('token', async () => {
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      clientAuth,
      callbackParameters,
      redirectUri,
      codeVerifier,
      { DPoP: dpop },
    )
    if (response.ok) rawTokenType = (await response.clone().json()).token_type
    return oauth.processAuthorizationCodeResponse(as, client, response, {
      expectedNonce: nonce,
      requireIdToken: true,
    })
  })
  const idTokenClaims = oauth.getValidatedIdTokenClaims(tokens)

  // UserInfo with the DPoP-bound access token.
  const userinfo = await withNonceRetry('userinfo', async () =>
    oauth.processUserInfoResponse(
      as,
      client,
      idTokenClaims.sub,
      await oauth.userInfoRequest(as, client, tokens.access_token, { DPoP: dpop }),
    ),
  )

  // Refresh, proved with the same DPoP key.
  let rawRefreshTokenType
  const refreshed = await withNonceRetry('refresh', async () => {
    const response = await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, {
      DPoP: dpop,
    })
    if (response.ok) rawRefreshTokenType = (await response.clone().json()).token_type
    return oauth.processRefreshTokenResponse(as, client, response)
  })

  emit({
    result: {
      issuer: as.issuer,
      request_uri: pushed.request_uri,
      callback_iss: callbackParameters.get('iss'),
      token_type: rawTokenType,
      access_token: tokens.access_token,
      refresh_token_present: typeof tokens.refresh_token === 'string',
      id_token_claims: idTokenClaims,
      dpop_jkt: await dpop.calculateThumbprint(),
      userinfo,
      refreshed_token_type: rawRefreshTokenType,
      refreshed_access_token: refreshed.access_token,
      retries,
    },
  })
}

run(main)
