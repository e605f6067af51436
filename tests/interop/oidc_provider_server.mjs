// panva's oidc-provider (a certified FAPI 2.0 authorization server) as a test peer, configured
// for the FAPI 2.0 Security Profile (Final), started by tests/interop/peer.py. It issues
// DPoP-bound JWT access tokens (RFC 9068, typ at+jwt) for one resource, so Corridor's
// resource-server library can be tested against tokens from a certified peer (or opaque ones,
// CORRIDOR_PEER_AT_FORMAT=opaque, for a resource server that introspects them).
//
// Input (environment):
//   CORRIDOR_PEER_PORT         TCP port on 127.0.0.1; 0 (or unset) picks a free one
//   CORRIDOR_PEER_CERT         PEM file: the server certificate (localhost and 127.0.0.1)
//   CORRIDOR_PEER_KEY          PEM file: its private key
//   CORRIDOR_PEER_RESOURCE     the resource indicator (RFC 8707), e.g. https://rs.example.org/api
//   CORRIDOR_PEER_SCOPE        the resource's scope(s), space separated (default "accounts")
//   CORRIDOR_PEER_AT_ALG       the access-token signing alg: ES256 (default), PS256 or EdDSA
//   CORRIDOR_PEER_AT_FORMAT    the resource's access-token format: jwt (default, RFC 9068) or opaque
//                              (a handle only introspection can read: oidc-provider refuses to
//                              introspect its JWT access tokens, unsupported_token_type)
//   CORRIDOR_CLIENT_ID         the one static client
//   CORRIDOR_CLIENT_JWK        its public signing JWK (ES256), JSON
//   CORRIDOR_REDIRECT_URI      its redirect URI (and the mTLS client's)
//   CORRIDOR_MTLS_CLIENT_ID    optional: turns on the mTLS mode (below) with this second static client
//   CORRIDOR_MTLS_CLIENT_JWK   its public JWK, JSON, with the self-signed certificate in x5c
//   CORRIDOR_MS_CLIENT_ID      optional: turns on the Message Signing mode (below) with this static client
//   CORRIDOR_MS_CLIENT_JWK     its public signing JWK, JSON (ES256, PS256 or EdDSA, with alg)
//   CORRIDOR_MS_JARM_ALG       the JARM signing alg for it: ES256 (default), PS256 or EdDSA
//   CORRIDOR_RS_CLIENT_ID      Message Signing mode only: a resource server's introspection client
//   CORRIDOR_RS_CLIENT_JWK     its public signing JWK (ES256, PS256 or EdDSA, with alg), JSON
//   CORRIDOR_PEER_JWT_INTROSPECTION  Message Signing mode: 0 turns RFC 9701 off (introspection
//                              answers JSON only, whatever the Accept header; an AS without it)
//
// Protocol (one JSON object per line on stdout):
//   {"ready": true, "issuer": "https://localhost:PORT", "port": PORT,
//    "mtls_port": MTLS_PORT (mTLS mode only)}                           once listening
//   {"error": {...}}                                                    if start-up fails
// The process exits when its stdin closes (so a dead test run leaves no server behind).
// Diagnostics (oidc-provider's warnings, request errors) go to stderr.
//
// The user's part uses oidc-provider's own development interactions (features.devInteractions):
// a login page that accepts any login name (it becomes the token's sub) and a consent page. No
// other check is relaxed: HTTPS only (no allowInsecureRequests), PAR required, PKCE S256 required,
// private_key_jwt only (aud = the issuer identifier, enforced by the FAPI 2.0 profile), DPoP-bound
// access tokens required for the client, and a DPoP nonce required at every DPoP-checking endpoint.
//
// Both modes: userinfo is on, and a client that asks for offline_access (with prompt=consent, as
// OIDC Core 11 requires) gets a refresh token. The refresh token is never rotated (FAPI2 5.3.2.1-9:
// no rotation, except in extraordinary circumstances). With openid in scope and no resource in
// the token request, the access token is an opaque one for userinfo; with resource, a JWT for it.
//
// mTLS mode (CORRIDOR_MTLS_CLIENT_ID set): RFC 8705 with endpoint aliases (RFC 8705 5). A second
// HTTPS listener on another free port asks every TLS client for a certificate (requestCert; the
// certificate is not checked against a CA at the TLS layer, rejectUnauthorized: false, because
// self_signed_tls_client_auth matches it against the client's registered x5c instead) and serves
// the same provider; the metadata publishes it as mtls_endpoint_aliases for the PAR, token and
// userinfo endpoints. The issuer's listener stays as in the default mode: it never asks for a
// certificate, so a certificate-bound token or an mTLS client authentication only works on the
// aliases. The second client uses self_signed_tls_client_auth and gets certificate-bound access
// tokens (tls_client_certificate_bound_access_tokens, cnf.x5t#S256). Everything else stays strict.
//
// Message Signing mode (CORRIDOR_MS_CLIENT_ID set): FAPI 2.0 Message Signing, the way
// oidc-provider documents it: features.requestObjects and features.jwtResponseModes on (with the
// FAPI 2.0 profile, which makes the provider require exp, nbf and aud in a request object and
// exp - nbf <= 60 min), and a third static client (private_key_jwt + DPoP like the first) that
// must push a signed request object (require_signed_request_object: true, FMS 5.3.1-1; signed
// with request_object_signing_alg = its JWK's alg; an unsigned PAR is refused with
// invalid_request "Request Object must be used by this client") and may only ask for
// response_mode=jwt (response_modes: ["jwt"], FMS 5.3.3 / 5.4.1: JARM required), signed with
// authorization_signed_response_alg. The first client is unchanged (it may, but need not, sign).
// Introspection with JWT responses (RFC 9701, FMS 5.5) is on as well: the MS client gets signed
// introspection responses (introspection_signed_response_alg ES256) when it asks for them.
// With CORRIDOR_RS_CLIENT_ID, a fourth static client is a resource server's: no grant types, no
// response types, no redirect URIs (it can get no token), private_key_jwt, and
// introspection_signed_response_alg ES256. It may introspect any token: oidc-provider's default
// introspection.allowedPolicy lets any authenticated confidential client do so. oidc-provider
// signs for every client that asks with Accept: application/token-introspection+jwt (a client's
// introspection_signed_response_alg defaults to RS256, which enabledJWA does not allow here, so
// each client names ES256) and answers JSON otherwise. CORRIDOR_PEER_JWT_INTROSPECTION=0 leaves
// features.jwtIntrospection off (introspection stays on): every answer is JSON, and oidc-provider
// ignores the clients' introspection_signed_response_alg (unrecognized metadata is dropped).

import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as https from 'node:https'

import Provider, { errors } from 'oidc-provider'

import { emit, env } from './lines.mjs'

// FAPI2 5.4.1: PS256, ES256 and EdDSA (Ed25519) only.
const FAPI_ALGS = ['ES256', 'PS256', 'EdDSA']

function signingKeys() {
  const pairs = [
    ['ES256', crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['PS256', crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['EdDSA', crypto.generateKeyPairSync('ed25519')],
  ]
  return pairs.map(([alg, { privateKey }]) => {
    const jwk = privateKey.export({ format: 'jwk' })
    const kid = `${alg.toLowerCase()}-${crypto.randomBytes(6).toString('base64url')}`
    return { ...jwk, kid, alg, use: 'sig' }
  })
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve(server.address().port)
    })
  })
}

async function main() {
  const resource = env('CORRIDOR_PEER_RESOURCE')
  const resourceScope = process.env.CORRIDOR_PEER_SCOPE || 'accounts'
  const accessTokenAlg = process.env.CORRIDOR_PEER_AT_ALG || 'ES256'
  if (!FAPI_ALGS.includes(accessTokenAlg)) throw new Error(`CORRIDOR_PEER_AT_ALG must be one of ${FAPI_ALGS}`)
  const accessTokenFormat = process.env.CORRIDOR_PEER_AT_FORMAT || 'jwt'
  if (!['jwt', 'opaque'].includes(accessTokenFormat)) throw new Error('CORRIDOR_PEER_AT_FORMAT must be jwt or opaque')
  const clientJwk = JSON.parse(env('CORRIDOR_CLIENT_JWK'))
  if (clientJwk.d !== undefined) throw new Error('CORRIDOR_CLIENT_JWK must be a public JWK')
  const redirectUri = env('CORRIDOR_REDIRECT_URI')
  const mtlsClientId = process.env.CORRIDOR_MTLS_CLIENT_ID
  let mtlsClientJwk
  if (mtlsClientId) {
    mtlsClientJwk = JSON.parse(env('CORRIDOR_MTLS_CLIENT_JWK'))
    if (mtlsClientJwk.d !== undefined) throw new Error('CORRIDOR_MTLS_CLIENT_JWK must be a public JWK')
    if (!Array.isArray(mtlsClientJwk.x5c) || !mtlsClientJwk.x5c.length) {
      throw new Error('CORRIDOR_MTLS_CLIENT_JWK must carry the client certificate in x5c')
    }
  }
  const msClientId = process.env.CORRIDOR_MS_CLIENT_ID
  let msClientJwk, msJarmAlg
  if (msClientId) {
    msClientJwk = JSON.parse(env('CORRIDOR_MS_CLIENT_JWK'))
    if (msClientJwk.d !== undefined) throw new Error('CORRIDOR_MS_CLIENT_JWK must be a public JWK')
    if (!FAPI_ALGS.includes(msClientJwk.alg)) throw new Error(`CORRIDOR_MS_CLIENT_JWK alg must be one of ${FAPI_ALGS}`)
    msJarmAlg = process.env.CORRIDOR_MS_JARM_ALG || 'ES256'
    if (!FAPI_ALGS.includes(msJarmAlg)) throw new Error(`CORRIDOR_MS_JARM_ALG must be one of ${FAPI_ALGS}`)
  }
  const rsClientId = process.env.CORRIDOR_RS_CLIENT_ID
  let rsClientJwk
  if (rsClientId) {
    if (!msClientId) throw new Error('CORRIDOR_RS_CLIENT_ID needs the Message Signing mode (introspection)')
    rsClientJwk = JSON.parse(env('CORRIDOR_RS_CLIENT_JWK'))
    if (rsClientJwk.d !== undefined) throw new Error('CORRIDOR_RS_CLIENT_JWK must be a public JWK')
    if (!FAPI_ALGS.includes(rsClientJwk.alg)) throw new Error(`CORRIDOR_RS_CLIENT_JWK alg must be one of ${FAPI_ALGS}`)
  }
  const tlsFiles = { cert: fs.readFileSync(env('CORRIDOR_PEER_CERT')), key: fs.readFileSync(env('CORRIDOR_PEER_KEY')) }

  // Listen first, so the issuer names the real port (no race for a "free" port).
  const server = https.createServer({ ...tlsFiles, minVersion: 'TLSv1.2' })
  const port = await listen(server, Number(process.env.CORRIDOR_PEER_PORT || 0))
  const issuer = `https://localhost:${port}`
  // mTLS mode: the aliases' listener asks for a client certificate; the TLS layer accepts any
  // (or none), and oidc-provider decides per request (client authentication, token binding).
  let mtlsServer, mtlsPort, mtlsOrigin
  if (mtlsClientId) {
    mtlsServer = https.createServer({ ...tlsFiles, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false })
    mtlsPort = await listen(mtlsServer, 0)
    mtlsOrigin = `https://localhost:${mtlsPort}`
  }

  const configuration = {
    clients: [
      {
        client_id: env('CORRIDOR_CLIENT_ID'),
        redirect_uris: [redirectUri],
        response_types: ['code'],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: clientJwk.alg || 'ES256',
        jwks: { keys: [clientJwk] },
        id_token_signed_response_alg: 'ES256',
        dpop_bound_access_tokens: true,
        require_pushed_authorization_requests: true,
        // Message Signing mode: the JWS algs for JARM and JWT introspection (both features are
        // on then) are FAPI ones; oidc-provider's RS256 default is not enabled.
        ...(msClientId ? { authorization_signed_response_alg: 'ES256', introspection_signed_response_alg: 'ES256' } : {}),
      },
      ...(mtlsClientId
        ? [
            {
              client_id: mtlsClientId,
              redirect_uris: [redirectUri],
              response_types: ['code'],
              grant_types: ['authorization_code', 'refresh_token'],
              token_endpoint_auth_method: 'self_signed_tls_client_auth',
              // RFC 8705 2.2: the certificate is registered in x5c of the client's JWKS.
              jwks: { keys: [mtlsClientJwk] },
              id_token_signed_response_alg: 'ES256',
              tls_client_certificate_bound_access_tokens: true,
              require_pushed_authorization_requests: true,
              ...(msClientId ? { authorization_signed_response_alg: 'ES256', introspection_signed_response_alg: 'ES256' } : {}),
            },
          ]
        : []),
      ...(msClientId
        ? [
            {
              client_id: msClientId,
              redirect_uris: [redirectUri],
              response_types: ['code'],
              grant_types: ['authorization_code', 'refresh_token'],
              token_endpoint_auth_method: 'private_key_jwt',
              token_endpoint_auth_signing_alg: msClientJwk.alg,
              jwks: { keys: [msClientJwk] },
              id_token_signed_response_alg: 'ES256',
              dpop_bound_access_tokens: true,
              require_pushed_authorization_requests: true,
              // FMS 5.3.1-1: every authorization request is a signed request object (JAR).
              require_signed_request_object: true,
              request_object_signing_alg: msClientJwk.alg,
              // FMS 5.4.1 / 5.3.3: JARM only (response_mode=jwt, i.e. query.jwt for code).
              response_modes: ['jwt'],
              authorization_signed_response_alg: msJarmAlg,
              // RFC 9701 / FMS 5.5: signed introspection responses when asked for.
              introspection_signed_response_alg: 'ES256',
            },
          ]
        : []),
      ...(rsClientId
        ? [
            {
              // A resource server: it only calls the introspection endpoint (FMS 5.5.2).
              client_id: rsClientId,
              redirect_uris: [],
              response_types: [],
              grant_types: [],
              token_endpoint_auth_method: 'private_key_jwt',
              token_endpoint_auth_signing_alg: rsClientJwk.alg,
              jwks: { keys: [rsClientJwk] },
              // oidc-provider's RS256 defaults are not enabled: each client names FAPI algs.
              id_token_signed_response_alg: 'ES256',
              authorization_signed_response_alg: 'ES256',
              introspection_signed_response_alg: 'ES256',
            },
          ]
        : []),
    ],
    clientAuthMethods: mtlsClientId ? ['private_key_jwt', 'self_signed_tls_client_auth'] : ['private_key_jwt'],
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access'],
    // OIDC Core 11: offline_access (kept only with prompt=consent) yields a refresh token.
    async issueRefreshToken(ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access')
    },
    // FAPI2 5.3.2.1-9: no refresh-token rotation.
    rotateRefreshToken: false,
    ...(mtlsClientId
      ? {
          discovery: {
            mtls_endpoint_aliases: {
              pushed_authorization_request_endpoint: `${mtlsOrigin}/request`,
              token_endpoint: `${mtlsOrigin}/token`,
              userinfo_endpoint: `${mtlsOrigin}/me`,
            },
          },
        }
      : {}),
    pkce: { required: () => true },
    allowOmittingSingleRegisteredRedirectUri: false,
    jwks: { keys: signingKeys() },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    clockTolerance: 5,
    enabledJWA: {
      clientAuthSigningAlgValues: FAPI_ALGS,
      idTokenSigningAlgValues: FAPI_ALGS,
      requestObjectSigningAlgValues: FAPI_ALGS,
      userinfoSigningAlgValues: FAPI_ALGS,
      introspectionSigningAlgValues: FAPI_ALGS,
      authorizationSigningAlgValues: FAPI_ALGS,
      dPoPSigningAlgValues: ['ES256', 'EdDSA'],
    },
    // Any login name is an account whose only claim is sub.
    async findAccount(ctx, sub) {
      return { accountId: sub, async claims() { return { sub } } }
    },
    features: {
      fapi: { enabled: true, profile: '2.0' },
      devInteractions: { enabled: true },
      dPoP: {
        enabled: true,
        nonceSecret: crypto.randomBytes(32),
        requireNonce: () => true,
      },
      pushedAuthorizationRequests: {
        enabled: true,
        requirePushedAuthorizationRequests: true,
        allowUnregisteredRedirectUris: false,
      },
      resourceIndicators: {
        enabled: true,
        // No resource in the request: no default (the client must name it).
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        async getResourceServerInfo(ctx, resourceIndicator) {
          if (resourceIndicator !== resource) throw new errors.InvalidTarget()
          return {
            scope: resourceScope,
            audience: resource,
            accessTokenFormat,
            accessTokenTTL: 600,
            ...(accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: accessTokenAlg } } } : {}),
          }
        },
      },
      userinfo: { enabled: true },
      ...(msClientId
        ? {
            // Signed request objects are required per client (require_signed_request_object
            // above), not server-wide, so the first client keeps its plain PAR.
            requestObjects: { enabled: true, requireSignedRequestObject: false },
            jwtResponseModes: { enabled: true },
            introspection: { enabled: true },
            jwtIntrospection: { enabled: process.env.CORRIDOR_PEER_JWT_INTROSPECTION !== '0' },
          }
        : {}),
      ...(mtlsClientId
        ? {
            mTLS: {
              enabled: true,
              certificateBoundAccessTokens: true,
              selfSignedTlsClientAuth: true,
              tlsClientAuth: false,
              // The contract: the PEM-formatted client certificate of this request, or
              // undefined when the connection has none (only the aliases' listener asks).
              getCertificate(ctx) {
                const socket = ctx.socket
                if (typeof socket?.getPeerCertificate !== 'function') return undefined
                const peer = socket.getPeerCertificate()
                if (!peer?.raw) return undefined
                const body = peer.raw.toString('base64').match(/.{1,64}/g).join('\n')
                return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`
              },
            },
          }
        : {}),
      rpInitiatedLogout: { enabled: false },
    },
  }

  const provider = new Provider(issuer, configuration)
  for (const event of [
    'server_error',
    'authorization.error',
    'pushed_authorization_request.error',
    'introspection.error',
    'grant.error',
    'userinfo.error',
    'jwks.error',
    'discovery.error',
  ]) {
    provider.on(event, (ctx, err) => {
      process.stderr.write(`${event}: ${err?.name}: ${err?.message} ${err?.error_description ?? ''}\n`)
    })
  }
  const callback = provider.callback()
  server.on('request', callback)
  mtlsServer?.on('request', callback)

  process.stdin.on('end', () => process.exit(0))
  process.stdin.resume()
  emit({ ready: true, issuer, port, ...(mtlsServer ? { mtls_port: mtlsPort } : {}) })
}

main().catch((err) => {
  emit({ error: { name: err?.name, message: err?.message, stack: err?.stack } })
  process.exit(1)
})
