// FAPI 2.0 Message Signing with panva's oauth4webapi (a certified FAPI 2.0 RP) against our AS:
// a signed request object at PAR (JAR, issueRequestObject), a signed authorization response
// (JARM, validateJwtAuthResponse), the code exchange, and a signed introspection response
// (RFC 9701) fetched and verified by the resource server's own client.
// Driven by tests/interop/test_oauth4webapi_message_signing.py.
//
// Input (environment):
//   CORRIDOR_ISSUER          the issuer identifier
//   CORRIDOR_CLIENT_ID       the client (registered with require_signed_request_object, response_modes jwt)
//   CORRIDOR_CLIENT_JWK      its private signing JWK (ES256), JSON
//   CORRIDOR_REDIRECT_URI    its registered redirect URI
//   CORRIDOR_SCOPE           the scope to request
//   CORRIDOR_RESOURCE        the resource server the token is for (RFC 8707)
//   CORRIDOR_RS_CLIENT_ID    the resource server's introspection client
//   CORRIDOR_RS_CLIENT_JWK   its private signing JWK (ES256), JSON
// TLS trust comes from NODE_EXTRA_CA_CERTS; no check of the library is switched off.
//
// Protocol (one JSON object per line): stdout {"authorization_url"}, stdin the callback URL,
// stdout {"result": {...}} or {"error": {...}} (exit status 1).

import { emit, env, readLine, run } from './lines.mjs'
import * as oauth from 'oauth4webapi'

const retries = {}

async function withNonceRetry(step, attempt) {
  try {
    return await attempt()
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err
    retries[step] = (retries[step] ?? 0) + 1
    return await attempt()
  }
}

async function signingKey(jwk) {
  const { kty, crv, x, y, d, kid } = JSON.parse(jwk)
  const key = await crypto.subtle.importKey('jwk', { kty, crv, x, y, d }, { name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
  ])
  return { key, kid }
}

async function main() {
  const issuer = new URL(env('CORRIDOR_ISSUER'))
  const clientId = env('CORRIDOR_CLIENT_ID')
  const redirectUri = env('CORRIDOR_REDIRECT_URI')
  const resource = env('CORRIDOR_RESOURCE')
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer))

  const client = { client_id: clientId, token_endpoint_auth_method: 'private_key_jwt' }
  const clientKey = await signingKey(env('CORRIDOR_CLIENT_JWK'))
  const clientAuth = oauth.PrivateKeyJwt(clientKey)
  const dpopKeys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])
  const dpop = oauth.DPoP(client, dpopKeys)

  const codeVerifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const parameters = new URLSearchParams({
    response_type: 'code',
    response_mode: 'jwt',
    redirect_uri: redirectUri,
    scope: env('CORRIDOR_SCOPE'),
    state,
    resource,
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
  })
  // JAR (RFC 9101): every parameter inside a request object signed with the client key.
  const requestObject = await oauth.issueRequestObject(as, client, parameters, clientKey)
  const pushed = await withNonceRetry('par', async () =>
    oauth.processPushedAuthorizationResponse(
      as,
      client,
      await oauth.pushedAuthorizationRequest(as, client, clientAuth, { request: requestObject }, { DPoP: dpop }),
    ),
  )
  const authorizationUrl = new URL(as.authorization_endpoint)
  authorizationUrl.searchParams.set('client_id', clientId)
  authorizationUrl.searchParams.set('request_uri', pushed.request_uri)
  emit({ authorization_url: authorizationUrl.href })

  // JARM: the library checks the signature (the AS's jwks_uri), iss, aud, exp, then state.
  const callbackUrl = new URL(await readLine())
  const callbackParameters = await oauth.validateJwtAuthResponse(as, client, callbackUrl, state)

  let rawTokenType
  const tokens = await withNonceRetry('token', async () => {
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      clientAuth,
      callbackParameters,
      redirectUri,
      codeVerifier,
      { DPoP: dpop, additionalParameters: { resource } },
    )
    if (response.ok) rawTokenType = (await response.clone().json()).token_type
    return oauth.processAuthorizationCodeResponse(as, client, response)
  })

  // RFC 9701: the resource server asks for a signed introspection response and verifies it.
  const rs = { client_id: env('CORRIDOR_RS_CLIENT_ID'), token_endpoint_auth_method: 'private_key_jwt' }
  const rsAuth = oauth.PrivateKeyJwt(await signingKey(env('CORRIDOR_RS_CLIENT_JWK')))
  const response = await oauth.introspectionRequest(as, rs, rsAuth, tokens.access_token, {
    requestJwtResponse: true,
  })
  const contentType = response.headers.get('content-type')
  const introspection = await oauth.processIntrospectionResponse(as, rs, response)
  await oauth.validateApplicationLevelSignature(as, response) // the JWS, against the jwks_uri

  emit({
    result: {
      request_object: requestObject,
      request_uri: pushed.request_uri,
      jarm_parameters: Object.fromEntries(callbackParameters.entries()),
      token_type: rawTokenType,
      access_token: tokens.access_token,
      dpop_jkt: await dpop.calculateThumbprint(),
      introspection_content_type: contentType,
      introspection,
      retries,
    },
  })
}

run(main)
