// panva's oidc-provider (the pinned interop peer, tests/interop/package.json) configured as a
// FAPI 2.0 Security Profile (Final) authorization server for `corridor check` (issue 14), started
// by tests/check/peer.py. Where tests/interop/oidc_provider_server.mjs serves two clients for the
// interop tests, this one serves the check's full matrix: two static clients for each of the four
// client-authentication x sender-constraint pairs, and JWT access tokens for one resource server
// even when the token request names no resource (the OIDF suite never sends `resource`).
//
// Input (environment):
//   CORRIDOR_PEER_CERT         PEM file: the server certificate (localhost and 127.0.0.1)
//   CORRIDOR_PEER_KEY          PEM file: its private key
//   CORRIDOR_PEER_TLS12_CIPHERS  OpenSSL list of the TLS 1.2 suites to offer (RFC 9325 4.2:
//                              ECDHE + AEAD only; tests/check/peer.py passes Corridor's own list)
//   CORRIDOR_PEER_RESOURCE     the resource indicator (RFC 8707) of the resource server, the
//                              access tokens' aud
//   CORRIDOR_PEER_RESOURCE_URL optional: the URL of the resource the check calls, accepted as a
//                              second indicator of the same resource server (same aud)
//   CORRIDOR_PEER_RESOURCE_SCOPE  its scope(s), space separated (default "accounts")
//   CORRIDOR_PEER_CLIENTS      JSON array, one object per client:
//                              {"client_id", "redirect_uri", "auth": "private_key_jwt" |
//                               "self_signed_tls_client_auth", "sender": "dpop" | "mtls",
//                               "jwk": its public JWK (private_key_jwt: the signing key;
//                               self_signed_tls_client_auth: with the certificate in x5c)}
//   CORRIDOR_PEER_MESSAGE_SIGNING   "1": FAPI 2.0 Message Signing for every client (see below)
//   CORRIDOR_PEER_FAULT             a test-only fault (Message Signing; see FAULTS below), or unset
//
// Protocol (one JSON object per line on stdout):
//   {"ready": true, "issuer": "https://localhost:PORT", "port": PORT, "mtls_port": MTLS_PORT}
//   {"error": {...}}                                       if start-up fails
// The process exits when its stdin closes (a dead test run leaves no server behind).
// Diagnostics (oidc-provider's error events) go to stderr.
//
// What is configured, and why (nothing is relaxed; only trust anchors and clients are added):
// - features.fapi profile '2.0' (the pinned 9.13.3's switch for FAPI 2.0 Security Profile Final):
//   PKCE S256 required, private_key_jwt aud = the issuer identifier only (a string),
//   redirect_uri required in every request, iss in every authorization response (RFC 9207).
// - PAR required for every client and advertised (require_pushed_authorization_requests);
//   unregistered redirect URIs refused (allowUnregisteredRedirectUris false); request_uri lives 60 s.
// - DPoP (RFC 9449) with a nonce required at every DPoP-checking endpoint (PAR, token, userinfo);
//   DPoP clients register dpop_bound_access_tokens, so a token request without a proof fails.
// - mTLS (RFC 8705): self_signed_tls_client_auth (the certificate in the client's registered jwks
//   x5c, RFC 8705 2.2) and certificate-bound access tokens (tls_client_certificate_bound_access_tokens,
//   cnf.x5t#S256). A second listener asks every TLS client for a certificate and serves the same
//   provider; the metadata names it in mtls_endpoint_aliases (RFC 8705 5) for PAR, token and
//   userinfo. The issuer's listener never asks for a certificate.
// - Resource indicators: every authorization defaults to the one resource (defaultResource) and
//   the token request uses the granted resource (useGrantedResource), so every access token is an
//   RFC 9068 JWT (typ at+jwt) for the resource, aud = the resource indicator, scope = the
//   resource's scopes that were granted. A client that does send resource may name the resource
//   server by its identifier or by the URL it calls (CORRIDOR_PEER_RESOURCE_URL); any other
//   value is invalid_target (RFC 8707 2). Consequence: with openid in scope, the access token is
//   for the resource, not for userinfo (oidc-provider refuses a token with an audience there);
//   userinfo stays on and published, but the check's [resource] is the resource server.
// - Refresh tokens: issued to every client registered for the refresh_token grant (all of them),
//   whether or not the request carried prompt=consent (oidc-provider keeps offline_access in the
//   grant only with prompt=consent, OIDC Core 11; this is oidc-provider's documented issueRefreshToken
//   hook, an issuing policy, not a check that is skipped). Never rotated (rotateRefreshToken false,
//   FAPI2 5.3.2.1-9: no rotation except in extraordinary circumstances).
// - clockTolerance is oidc-provider's default (15 s), the value panva certifies with; FAPI2
//   5.3.2.1-13 asks for 0-10 s accepted and more than 60 s refused: an assertion with nbf 8 s in
//   the future is accepted, one 60+ s in the future is refused. Known limits of the pinned
//   version (not configurable): an assertion's iat is only checked when it has no exp (nbf and
//   exp carry the window), and a DPoP proof's iat is not checked at all once it carries a valid
//   server nonce (the nonce bounds its age instead).
// - FAPI2 5.4.1 algorithms only (PS256, ES256, EdDSA) for every JWS the provider accepts or makes.
// - HSTS on every response (FAPI2 5.2.3-1), as panva's certification deployment sends it.
// - With CORRIDOR_PEER_MESSAGE_SIGNING=1, FAPI 2.0 Message Signing Final (the OIDF
//   fapi2-message-signing-final-test-plan, signed_non_repudiation + jarm): features.requestObjects
//   with requireSignedRequestObject (every client's require_signed_request_object is true; a PAR
//   without a request object is invalid_request), FAPI 2.0's request object checks (iss = the
//   client, aud = the issuer, exp/nbf present, exp - nbf <= 60 min: oidc-provider's default
//   assertJwtClaimsAndHeader under profile 2.0), FAPI algorithms only; features.jwtResponseModes
//   (JARM) with every client registered for response_modes ["jwt"] only and
//   authorization_signed_response_alg ES256, so every authorization response, error or success,
//   is a JWT (iss, aud, exp = +120 s) in ?response= and a request without response_mode=jwt is refused.
// - The user's part: oidc-provider's development interactions (a login page that accepts any login
//   name, which becomes sub, and a consent page); no external account store.

import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as https from 'node:https'

// The peer is installed under tests/interop (one package-lock for all Node peers).
import Provider, { errors } from '../interop/node_modules/oidc-provider/lib/index.js'

import { emit, env } from '../interop/lines.mjs'

// FAPI2 5.4.1: PS256, ES256 and EdDSA (Ed25519) only.
const FAPI_ALGS = ['ES256', 'PS256', 'EdDSA']
const AUTH_METHODS = ['private_key_jwt', 'self_signed_tls_client_auth']
const SENDERS = ['dpop', 'mtls']
// TLS 1.3 suites (RFC 8446 9.1 mandatory and recommended ones); TLS 1.2 comes from the caller.
const TLS13_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256'

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

const MESSAGE_SIGNING = process.env.CORRIDOR_PEER_MESSAGE_SIGNING === '1'
// Test-only faults, one per process, for corridor check to catch (tests/check/test_check_message_signing.py):
const FAULTS = {
  // Signed request objects are not required: PAR takes plain parameters from a signing client.
  'unsigned-request-accepted': 'PAR accepts parameters without a request object',
  // A request object past its exp is taken anyway: PAR unwraps it and hands its claims on as
  // plain parameters (its signature not looked at), as a server that ignores exp would.
  'expired-request-object-accepted': 'PAR takes an expired request object',
  // The JARM response is re-signed without its iss claim.
  'jarm-without-iss': 'JARM responses without iss',
  // The JARM response is re-signed with RS256 (by the provider's RSA key), an alg FAPI forbids.
  'jarm-rs256': 'JARM responses signed with RS256',
}
const FAULT = process.env.CORRIDOR_PEER_FAULT || ''
if (FAULT && !FAULTS[FAULT]) throw new Error(`unknown CORRIDOR_PEER_FAULT ${FAULT}`)

// One registered client from the caller's description; the FAPI choices are made here.
function clientMetadata(spec) {
  const { client_id: clientId, redirect_uri: redirectUri, auth, sender, jwk } = spec
  if (!clientId || !redirectUri) throw new Error('every client needs client_id and redirect_uri')
  if (!AUTH_METHODS.includes(auth)) throw new Error(`${clientId}: auth must be one of ${AUTH_METHODS}`)
  if (!SENDERS.includes(sender)) throw new Error(`${clientId}: sender must be one of ${SENDERS}`)
  if (!jwk || jwk.d !== undefined || jwk.p !== undefined) throw new Error(`${clientId}: jwk must be a public JWK`)
  const metadata = {
    client_id: clientId,
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: auth,
    jwks: { keys: [jwk] },
    id_token_signed_response_alg: 'ES256',
    require_pushed_authorization_requests: true,
  }
  if (auth === 'private_key_jwt') {
    if (!FAPI_ALGS.includes(jwk.alg)) throw new Error(`${clientId}: the JWK's alg must be one of ${FAPI_ALGS}`)
    // Only this alg (an RS256 assertion, say, is invalid_client).
    metadata.token_endpoint_auth_signing_alg = jwk.alg
  } else if (!Array.isArray(jwk.x5c) || !jwk.x5c.length) {
    // RFC 8705 2.2: the self-signed certificate is registered in x5c of the client's JWKS.
    throw new Error(`${clientId}: self_signed_tls_client_auth needs the certificate in the JWK's x5c`)
  }
  if (sender === 'dpop') metadata.dpop_bound_access_tokens = true
  else metadata.tls_client_certificate_bound_access_tokens = true
  if (MESSAGE_SIGNING) {
    // FAPI2-MS-FINAL 5.3.1-1 (RFC 9101 10.5) and 5.4.1 (JARM only, 5.3.3 response_modes).
    metadata.require_signed_request_object = FAULT !== 'unsigned-request-accepted'
    metadata.response_modes = ['jwt']
    metadata.authorization_signed_response_alg = 'ES256'
  }
  return metadata
}

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString())
}

// A compact JWS of header + payload signed by one of the provider's private JWKs (fault modes).
function signCompact(header, payload, jwk) {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`
  const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' })
  let signature
  if (header.alg === 'ES256') signature = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
  else if (header.alg === 'RS256') signature = crypto.sign('sha256', Buffer.from(input), key)
  else throw new Error(`signCompact: ${header.alg}`)
  return `${input}.${signature.toString('base64url')}`
}

// The faults that change JARM responses: the response JWT oidc-provider made, re-signed.
function faultyJarm(provider, keys) {
  const original = provider.IdToken.prototype.issue
  provider.IdToken.prototype.issue = async function issue(options) {
    const token = await original.call(this, options)
    if (options?.use !== 'authorization') return token
    const [head, body] = token.split('.')
    const header = b64json(head)
    const payload = b64json(body)
    if (FAULT === 'jarm-without-iss') {
      delete payload.iss
      return signCompact(header, payload, keys.find((k) => k.kid === header.kid))
    }
    const rsa = keys.find((k) => k.kty === 'RSA')
    return signCompact({ ...header, alg: 'RS256', kid: rsa.kid }, payload, rsa)
  }
}

// The expired-request-object fault: a PAR whose request object's exp has passed gets the
// object's claims as plain parameters (oidc-provider reads an already parsed body, ctx.req.body).
const REQUEST_OBJECT_CLAIMS = new Set(['iss', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sub'])
async function unwrapExpiredRequestObjects(ctx, next) {
  if (ctx.method === 'POST' && ctx.path === '/request' && ctx.is('application/x-www-form-urlencoded')) {
    const chunks = []
    for await (const chunk of ctx.req) chunks.push(chunk)
    const form = new URLSearchParams(Buffer.concat(chunks).toString())
    const request = form.get('request')
    if (request) {
      const claims = b64json(request.split('.')[1])
      if (typeof claims.exp === 'number' && claims.exp < Date.now() / 1000) {
        form.delete('request')
        for (const [name, value] of Object.entries(claims)) {
          if (REQUEST_OBJECT_CLAIMS.has(name)) continue
          form.set(name, typeof value === 'string' ? value : JSON.stringify(value))
        }
      }
    }
    ctx.req.body = form.toString()
  }
  await next()
}

async function main() {
  const resource = env('CORRIDOR_PEER_RESOURCE')
  const resourceScope = process.env.CORRIDOR_PEER_RESOURCE_SCOPE || 'accounts'
  const indicators = new Set([resource, process.env.CORRIDOR_PEER_RESOURCE_URL].filter(Boolean))
  const clients = JSON.parse(env('CORRIDOR_PEER_CLIENTS')).map(clientMetadata)
  if (new Set(clients.map((c) => c.client_id)).size !== clients.length) throw new Error('client_ids must differ')
  const tlsOptions = {
    cert: fs.readFileSync(env('CORRIDOR_PEER_CERT')),
    key: fs.readFileSync(env('CORRIDOR_PEER_KEY')),
    minVersion: 'TLSv1.2',
    ciphers: `${TLS13_SUITES}:${env('CORRIDOR_PEER_TLS12_CIPHERS')}`,
    honorCipherOrder: true,
  }

  // Listen first, so the issuer names the real port (no race for a "free" port).
  const server = https.createServer(tlsOptions)
  const port = await listen(server, 0)
  const issuer = `https://localhost:${port}`
  // The aliases' listener asks for a client certificate; the TLS layer accepts any (or none):
  // self_signed_tls_client_auth matches it against the client's registered x5c, and the token
  // binding takes its thumbprint, per request.
  const mtlsServer = https.createServer({ ...tlsOptions, requestCert: true, rejectUnauthorized: false })
  const mtlsPort = await listen(mtlsServer, 0)
  const mtlsOrigin = `https://localhost:${mtlsPort}`

  const providerKeys = signingKeys()
  const configuration = {
    clients,
    clientAuthMethods: AUTH_METHODS,
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access'],
    async issueRefreshToken(ctx, client) {
      return client.grantTypeAllowed('refresh_token')
    },
    rotateRefreshToken: false,
    discovery: {
      mtls_endpoint_aliases: {
        pushed_authorization_request_endpoint: `${mtlsOrigin}/request`,
        token_endpoint: `${mtlsOrigin}/token`,
        userinfo_endpoint: `${mtlsOrigin}/me`,
      },
    },
    pkce: { required: () => true },
    allowOmittingSingleRegisteredRedirectUri: false,
    jwks: { keys: providerKeys },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    enabledJWA: {
      clientAuthSigningAlgValues: FAPI_ALGS,
      idTokenSigningAlgValues: FAPI_ALGS,
      requestObjectSigningAlgValues: FAPI_ALGS,
      userinfoSigningAlgValues: FAPI_ALGS,
      introspectionSigningAlgValues: FAPI_ALGS,
      authorizationSigningAlgValues: FAPI_ALGS,
      dPoPSigningAlgValues: FAPI_ALGS,
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
        async defaultResource(ctx, client, oneOf) {
          return oneOf || resource
        },
        useGrantedResource: async () => true,
        async getResourceServerInfo(ctx, resourceIndicator) {
          if (!indicators.has(resourceIndicator)) throw new errors.InvalidTarget()
          return {
            scope: resourceScope,
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 600,
            jwt: { sign: { alg: 'ES256' } },
          }
        },
      },
      userinfo: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        selfSignedTlsClientAuth: true,
        tlsClientAuth: false,
        // The certificate of this connection (an X509Certificate), or undefined when it has none
        // (only the aliases' listener asks for one).
        getCertificate(ctx) {
          const socket = ctx.socket
          if (typeof socket?.getPeerX509Certificate !== 'function') return undefined
          return socket.getPeerX509Certificate() || undefined
        },
      },
      rpInitiatedLogout: { enabled: false },
    },
  }
  if (MESSAGE_SIGNING) {
    configuration.features.requestObjects = {
      enabled: true,
      requireSignedRequestObject: !['unsigned-request-accepted', 'expired-request-object-accepted'].includes(FAULT),
    }
    configuration.features.jwtResponseModes = { enabled: true }
    if (FAULT === 'expired-request-object-accepted') {
      for (const client of clients) client.require_signed_request_object = false
    }
  }

  const provider = new Provider(issuer, configuration)
  if (FAULT === 'jarm-without-iss' || FAULT === 'jarm-rs256') faultyJarm(provider, providerKeys)
  if (FAULT === 'expired-request-object-accepted') provider.use(unwrapExpiredRequestObjects)
  for (const event of [
    'server_error',
    'authorization.error',
    'pushed_authorization_request.error',
    'grant.error',
    'userinfo.error',
    'jwks.error',
    'discovery.error',
  ]) {
    provider.on(event, (ctx, err) => {
      process.stderr.write(`${event}: ${err?.name}: ${err?.message} ${err?.error_description ?? ''} ${err?.error_detail ?? ''}\n`)
    })
  }
  // FAPI2 5.2.3-1: browser endpoints protected against TLS stripping (HSTS), as panva's own
  // certification deployment adds it (helmet) in front of the provider.
  provider.use(async (ctx, next) => {
    await next()
    ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains')
  })
  const callback = provider.callback()
  server.on('request', callback)
  mtlsServer.on('request', callback)

  process.stdin.on('end', () => process.exit(0))
  process.stdin.resume()
  emit({ ready: true, issuer, port, mtls_port: mtlsPort })
}

main().catch((err) => {
  emit({ error: { name: err?.name, message: err?.message, stack: err?.stack } })
  process.exit(1)
})
