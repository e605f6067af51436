// A FAPI 2.0 client with mutual TLS (RFC 8705) built only from panva's oauth4webapi (a
// certified FAPI 2.0 RP), driven by tests/interop/test_oauth4webapi_mtls.py: tls_client_auth
// client authentication and certificate-bound access tokens at the server's mTLS aliases.
//
// Input (environment):
//   CORRIDOR_ISSUER        the issuer identifier, e.g. https://localhost:PORT
//   CORRIDOR_CLIENT_ID     the registered client_id
//   CORRIDOR_REDIRECT_URI  the registered redirect URI
//   CORRIDOR_SCOPE         the scope to request
//   CORRIDOR_CA_FILE       the CA that signed the server's certificates (PEM)
//   CORRIDOR_CERT_FILE     the client certificate (PEM)
//   CORRIDOR_KEY_FILE      the client certificate's private key (PEM)
// Node 20's global fetch cannot present a client certificate: every request goes through
// undici's fetch with an Agent that holds the certificate and trusts only CORRIDOR_CA_FILE.
// No check of the library or of TLS is switched off.
//
// Protocol (one JSON object per line):
//   stdout  {"authorization_url": "..."}         after PAR
//   stdin   the callback URL (the authorization response), one line
//   stdout  {"result": {...}}                      at the end
//   stdout  {"error": {...}}                       on any failure (exit status 1)

import { readFileSync } from 'node:fs'
import { emit, env, readLine, run } from './lines.mjs'
import * as oauth from 'oauth4webapi'
import { Agent, fetch as undiciFetch } from 'undici'




async function main() {
  const issuer = new URL(env('CORRIDOR_ISSUER'))
  const clientId = env('CORRIDOR_CLIENT_ID')
  const redirectUri = env('CORRIDOR_REDIRECT_URI')
  const scope = env('CORRIDOR_SCOPE')

  // The client certificate goes with every connection; the server's main listener never asks
  // for it, the mTLS listener (the aliases) does.
  const agent = new Agent({
    connect: {
      ca: readFileSync(env('CORRIDOR_CA_FILE')),
      cert: readFileSync(env('CORRIDOR_CERT_FILE')),
      key: readFileSync(env('CORRIDOR_KEY_FILE')),
    },
  })
  // Every request the library makes, as [method, url, status], in order.
  const calls = []
  const options = {
    [oauth.customFetch]: async (url, init) => {
      const response = await undiciFetch(url, { ...init, dispatcher: agent })
      calls.push([init?.method ?? 'GET', String(url), response.status])
      return response
    },
  }

  // Discovery (OIDC), with the library's issuer check.
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, options))

  // oauth4webapi v3 takes the alias choice from the client metadata (RFC 8705 5): PAR, token
  // and userinfo requests go to as.mtls_endpoint_aliases.
  const client = {
    client_id: clientId,
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_certificate_bound_access_tokens: true,
    use_mtls_endpoint_aliases: true,
    id_token_signed_response_alg: 'ES256',
  }
  // tls_client_auth (RFC 8705 2.1): the form carries client_id; the certificate does the rest.
  const clientAuth = oauth.TlsClientAuth()

  // PAR with PKCE S256, at the mTLS alias.
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
  const pushed = await oauth.processPushedAuthorizationResponse(
    as,
    client,
    await oauth.pushedAuthorizationRequest(as, client, clientAuth, parameters, options),
  )

  // The authorization endpoint has no alias: the browser goes to the main listener.
  const authorizationUrl = new URL(as.authorization_endpoint)
  authorizationUrl.searchParams.set('client_id', clientId)
  authorizationUrl.searchParams.set('request_uri', pushed.request_uri)
  emit({ authorization_url: authorizationUrl.href })

  // The authorization response: iss (RFC 9207) and state are checked by the library.
  const callbackUrl = new URL(await readLine())
  const callbackParameters = oauth.validateAuthResponse(as, client, callbackUrl, state)

  // The code exchange at the token alias; the ID token's claims are checked (iss, aud, nonce).
  const codeResponse = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    clientAuth,
    callbackParameters,
    redirectUri,
    codeVerifier,
    options,
  )
  const rawTokenType = codeResponse.ok ? (await codeResponse.clone().json()).token_type : undefined
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, codeResponse, {
    ...options,
    expectedNonce: nonce,
    requireIdToken: true,
  })
  const idTokenClaims = oauth.getValidatedIdTokenClaims(tokens)

  // UserInfo at its alias, with the certificate-bound access token.
  const userinfo = await oauth.processUserInfoResponse(
    as,
    client,
    idTokenClaims.sub,
    await oauth.userInfoRequest(as, client, tokens.access_token, options),
    options,
  )

  // Refresh at the token alias, with the same certificate.
  const refreshResponse = await oauth.refreshTokenGrantRequest(
    as,
    client,
    clientAuth,
    tokens.refresh_token,
    options,
  )
  const rawRefreshTokenType = refreshResponse.ok
    ? (await refreshResponse.clone().json()).token_type
    : undefined
  const refreshed = await oauth.processRefreshTokenResponse(as, client, refreshResponse, options)

  await agent.close()
  emit({
    result: {
      issuer: as.issuer,
      mtls_endpoint_aliases: as.mtls_endpoint_aliases,
      request_uri: pushed.request_uri,
      callback_iss: callbackParameters.get('iss'),
      token_type: rawTokenType,
      token_type_as_processed: tokens.token_type,
      access_token: tokens.access_token,
      refresh_token_present: typeof tokens.refresh_token === 'string',
      id_token_claims: idTokenClaims,
      userinfo,
      refreshed_token_type: rawRefreshTokenType,
      refreshed_access_token: refreshed.access_token,
      calls,
    },
  })
}

run(main)
