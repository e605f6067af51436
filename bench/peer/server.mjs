// panva's oidc-provider (a certified FAPI 2.0 authorization server) as the benchmark peer:
// the same load driver that runs complete flows against Corridor's AS runs them against this
// one, so the two can be compared. Configured for the FAPI 2.0 Security Profile (Final), with
// its own login and consent pages (not oidc-provider's development interactions).
//
// Input (environment):
//   CORRIDOR_PEER_PORT         TCP port on 127.0.0.1; 0 (or unset) picks a free one
//   CORRIDOR_PEER_CERT         PEM file: the server certificate (localhost and 127.0.0.1)
//   CORRIDOR_PEER_KEY          PEM file: its private key
//   CORRIDOR_PEER_RESOURCE     the resource indicator (RFC 8707), e.g. https://127.0.0.1:9444
//   CORRIDOR_PEER_SCOPE        the resource's scope(s), space separated (default "accounts")
//   CORRIDOR_CLIENT_ID         the one static client
//   CORRIDOR_CLIENT_JWK        its public signing JWK (ES256), JSON
//   CORRIDOR_REDIRECT_URI      its redirect URI
//   CORRIDOR_PEER_REFRESH      "1": the client may use the refresh_token grant and gets a refresh
//                              token with every code, as Corridor gives one (issue 19's second
//                              flow shape); unset: no refresh tokens (the issue 6 configuration)
//   CORRIDOR_PEER_INTROSPECTION "1": the introspection endpoint (RFC 7662) is on, for the bench's
//                              per-endpoint figures; unset: off (the issue 6 configuration)
//
// Protocol (one JSON object per line on stdout):
//   {"ready": true, "issuer": "https://localhost:PORT", "port": PORT}   once listening
//   {"error": {...}}                                                    if start-up fails (exit 1)
// The process exits when its stdin closes (so a dead benchmark run leaves no server behind).
// Diagnostics (oidc-provider's warnings, request errors) go to stderr.
//
// Nothing is relaxed: HTTPS only, PAR required, PKCE S256 required, private_key_jwt only (aud =
// the issuer identifier, enforced by the FAPI 2.0 profile), DPoP-bound access tokens required
// for the client and a DPoP nonce required at every DPoP-checking endpoint (PAR, token,
// userinfo). A token request with resource=CORRIDOR_PEER_RESOURCE (also named in the PAR)
// yields a JWT access token (RFC 9068, ES256, 300 s) for that audience with the resource scope;
// without resource (and openid in scope) an opaque access token for userinfo. No refresh tokens
// unless CORRIDOR_PEER_REFRESH=1: then every code comes with one (oidc-provider's default would
// issue one only for offline_access, which needs prompt=consent), not rotated for this
// confidential client (oidc-provider's default rotateRefreshToken; Corridor does not rotate
// either), and a refresh needs a DPoP proof; its access token is bound to that proof's key.
// Without offline_access the refresh token lives with the sign-in session and its latest grant
// for the client (oidc-provider's default expiresWithSession), which the bench's flows keep.
// With CORRIDOR_PEER_INTROSPECTION=1 a client may introspect the tokens issued to it (RFC 7662 4;
// Corridor's rule for a client's own tokens), authenticated with private_key_jwt.
//
// The user's part: GET /interaction/UID shows a login page (any user name with any non-empty
// password; the name becomes the sub) or a consent page; the forms POST to
// /interaction/UID/login and /interaction/UID/consent with a CSRF value derived from the
// interaction's uid. Login is remembered by oidc-provider's session cookie; consent is asked in
// every authorization (loadExistingGrant only returns the grant the consent page just made).
// Storage: oidc-provider's default in-memory adapter.

import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as https from 'node:https'

import Provider, { errors } from 'oidc-provider'

const FORM_LIMIT = 64 * 1024
// FAPI2 5.4.1: PS256, ES256 and EdDSA (Ed25519) only, for what clients sign.
const FAPI_ALGS = ['ES256', 'PS256', 'EdDSA']

function emit(object) {
  process.stdout.write(JSON.stringify(object) + '\n')
}

function env(name) {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const kid = `es256-${crypto.randomBytes(6).toString('base64url')}`
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' }
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

// --- the interaction pages -------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message)
    this.status = status
  }
}

const CSRF_SECRET = crypto.randomBytes(32)

function csrfFor(uid) {
  return crypto.createHmac('sha256', CSRF_SECRET).update(`interaction:${uid}`).digest('base64url')
}

function csrfValid(uid, value) {
  const expected = Buffer.from(csrfFor(uid))
  const given = Buffer.from(typeof value === 'string' ? value : '')
  return given.length === expected.length && crypto.timingSafeEqual(given, expected)
}

function esc(value) {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
}

function pageHeaders(res) {
  res.setHeader('Cache-Control', 'no-store')
  res.setHeader('X-Frame-Options', 'DENY')
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('Referrer-Policy', 'no-referrer')
  res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'")
}

function sendPage(res, status, title, body) {
  const html = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body>
<h1>${esc(title)}</h1>
${body}
</body>
</html>
`
  res.statusCode = status
  res.setHeader('Content-Type', 'text/html; charset=utf-8')
  res.setHeader('Content-Length', Buffer.byteLength(html))
  res.end(html)
}

function loginPage(res, uid, status = 200, message = '') {
  const action = `/interaction/${encodeURIComponent(uid)}/login`
  sendPage(
    res,
    status,
    'Sign in',
    `${message ? `<p>${esc(message)}</p>\n` : ''}<form method="post" action="${esc(action)}">
<input type="hidden" name="csrf" value="${esc(csrfFor(uid))}">
<label>User name <input type="text" name="username" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>`,
  )
}

function consentPage(res, uid, details) {
  const action = `/interaction/${encodeURIComponent(uid)}/consent`
  const { missingOIDCScope = [], missingOIDCClaims = [], missingResourceScopes = {} } = details.prompt.details
  const items = [
    ...missingOIDCScope.map((scope) => `<li>${esc(scope)}</li>`),
    ...missingOIDCClaims.map((claim) => `<li>claim ${esc(claim)}</li>`),
    ...Object.entries(missingResourceScopes).map(
      ([indicator, scopes]) => `<li>${esc(scopes.join(' '))} at ${esc(indicator)}</li>`,
    ),
  ]
  sendPage(
    res,
    200,
    'Authorize',
    `<p>${esc(details.params.client_id)} asks for:</p>
<ul>${items.join('')}</ul>
<form method="post" action="${esc(action)}">
<input type="hidden" name="csrf" value="${esc(csrfFor(uid))}">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>`,
  )
}

function readForm(req) {
  const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase()
  if (type !== 'application/x-www-form-urlencoded') {
    return Promise.reject(new HttpError(415, 'the form must be application/x-www-form-urlencoded'))
  }
  if (Number(req.headers['content-length'] || 0) > FORM_LIMIT) {
    return Promise.reject(new HttpError(413, 'form too large'))
  }
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    let done = false
    req.on('data', (chunk) => {
      if (done) return
      size += chunk.length
      if (size > FORM_LIMIT) {
        done = true
        reject(new HttpError(413, 'form too large'))
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => {
      if (done) return
      done = true
      resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8')))
    })
    req.on('error', (err) => {
      if (done) return
      done = true
      reject(err)
    })
  })
}

const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|consent))?$/

async function interaction(provider, req, res, pathname) {
  pageHeaders(res)
  const match = INTERACTION_PATH.exec(pathname)
  if (!match) throw new HttpError(404, 'not found')
  const [, uid, action] = match
  const method = action ? 'POST' : 'GET'
  if (req.method !== method) {
    res.setHeader('Allow', method)
    throw new HttpError(405, 'method not allowed')
  }

  let details
  try {
    details = await provider.interactionDetails(req, res)
  } catch (err) {
    if (err instanceof errors.SessionNotFound) throw new HttpError(400, 'interaction not found or expired')
    throw err
  }
  // The interaction is found by its cookie; the path must name the same one.
  if (details.uid !== uid) throw new HttpError(400, 'interaction mismatch')
  const prompt = details.prompt.name

  if (!action) {
    if (prompt === 'login') return loginPage(res, uid)
    if (prompt === 'consent') return consentPage(res, uid, details)
    throw new HttpError(501, `prompt ${prompt} is not implemented`)
  }

  const form = await readForm(req)
  if (!csrfValid(uid, form.get('csrf'))) throw new HttpError(403, 'invalid form token')
  if (action !== prompt) throw new HttpError(400, `this interaction asks for ${prompt}, not ${action}`)

  if (action === 'login') {
    const username = form.get('username') || ''
    const password = form.get('password') || ''
    if (!username || !password) return loginPage(res, uid, 400, 'Enter a user name and a password.')
    return provider.interactionFinished(
      req,
      res,
      { login: { accountId: username } },
      { mergeWithLastSubmission: false },
    )
  }

  const decision = form.get('decision')
  if (decision === 'deny') {
    return provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'End-User denied the authorization' },
      { mergeWithLastSubmission: false },
    )
  }
  if (decision !== 'approve') throw new HttpError(400, 'decision must be approve or deny')

  // As in oidc-provider's documented consent example, but always a fresh grant: the consent of
  // one authorization is never reused by the next one (see loadExistingGrant).
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details
  const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id })
  if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '))
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims)
  if (missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '))
    }
  }
  const grantId = await grant.save()
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
}

function interactionError(req, res, err) {
  const status = err instanceof HttpError ? err.status : 500
  if (status === 500) {
    process.stderr.write(`interaction: ${req.method} ${req.url}: ${err?.stack ?? err}\n`)
  }
  if (res.headersSent) {
    res.destroy()
    return
  }
  if (status === 413) res.setHeader('Connection', 'close')
  pageHeaders(res)
  sendPage(res, status, 'Error', `<p>${esc(status === 500 ? 'internal error' : err.message)}</p>`)
}

// --- the provider -----------------------------------------------------------------------------

async function main() {
  const resource = env('CORRIDOR_PEER_RESOURCE')
  const resourceScope = process.env.CORRIDOR_PEER_SCOPE || 'accounts'
  const clientJwk = JSON.parse(env('CORRIDOR_CLIENT_JWK'))
  if (clientJwk.d !== undefined) throw new Error('CORRIDOR_CLIENT_JWK must be a public JWK')
  const clientId = env('CORRIDOR_CLIENT_ID')
  const redirectUri = env('CORRIDOR_REDIRECT_URI')
  const refresh = process.env.CORRIDOR_PEER_REFRESH === '1'
  const introspection = process.env.CORRIDOR_PEER_INTROSPECTION === '1'
  const tlsFiles = { cert: fs.readFileSync(env('CORRIDOR_PEER_CERT')), key: fs.readFileSync(env('CORRIDOR_PEER_KEY')) }

  // Listen first, so the issuer names the real port (no race for a "free" port).
  const server = https.createServer({ ...tlsFiles, minVersion: 'TLSv1.2' })
  const port = await listen(server, Number(process.env.CORRIDOR_PEER_PORT || 0))
  const issuer = `https://localhost:${port}`

  const configuration = {
    clients: [
      {
        client_id: clientId,
        redirect_uris: [redirectUri],
        response_types: ['code'],
        grant_types: refresh ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: clientJwk.alg || 'ES256',
        jwks: { keys: [clientJwk] },
        id_token_signed_response_alg: 'ES256',
        dpop_bound_access_tokens: true,
        require_pushed_authorization_requests: true,
      },
    ],
    clientAuthMethods: ['private_key_jwt'],
    responseTypes: ['code'],
    // OIDC scopes only; the resource scope comes from features.resourceIndicators below.
    scopes: ['openid'],
    // Issue 6: none. CORRIDOR_PEER_REFRESH=1: one with every code, as Corridor issues one.
    issueRefreshToken: async (ctx, client) => refresh && client.grantTypeAllowed('refresh_token'),
    pkce: { required: () => true },
    allowOmittingSingleRegisteredRedirectUri: false,
    jwks: { keys: [signingKey()] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    clockTolerance: 5,
    enabledJWA: {
      clientAuthSigningAlgValues: FAPI_ALGS,
      requestObjectSigningAlgValues: FAPI_ALGS,
      dPoPSigningAlgValues: ['ES256', 'EdDSA'],
      idTokenSigningAlgValues: ['ES256'],
      userinfoSigningAlgValues: ['ES256'],
      introspectionSigningAlgValues: ['ES256'],
      authorizationSigningAlgValues: ['ES256'],
    },
    interactions: {
      url: async (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // Consent in every authorization: only the grant the consent page has just saved (the
    // interaction result) counts, never one remembered in the session.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined
    },
    // Any login name is an account whose only claim is sub.
    async findAccount(ctx, sub) {
      return { accountId: sub, async claims() { return { sub } } }
    },
    features: {
      fapi: { enabled: true, profile: '2.0' },
      devInteractions: { enabled: false },
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
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg: 'ES256' } },
          }
        },
      },
      userinfo: { enabled: true },
      introspection: {
        enabled: introspection,
        // RFC 7662 4: a client may introspect the tokens issued to it, nothing else.
        allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
      },
      rpInitiatedLogout: { enabled: false },
    },
  }

  const provider = new Provider(issuer, configuration)
  for (const event of [
    'server_error',
    'authorization.error',
    'pushed_authorization_request.error',
    'grant.error',
    'userinfo.error',
    'introspection.error',
    'jwks.error',
    'discovery.error',
  ]) {
    provider.on(event, (ctx, err) => {
      process.stderr.write(`${event}: ${err?.name}: ${err?.message} ${err?.error_description ?? ''} ${err?.error_detail ?? ''}\n`)
    })
  }

  const callback = provider.callback()
  server.on('request', (req, res) => {
    let pathname
    try {
      pathname = new URL(req.url, issuer).pathname
    } catch {
      pathname = ''
    }
    if (pathname === '/interaction' || pathname.startsWith('/interaction/')) {
      interaction(provider, req, res, pathname).catch((err) => interactionError(req, res, err))
    } else {
      callback(req, res)
    }
  })

  process.stdin.on('end', () => process.exit(0))
  process.stdin.resume()
  emit({ ready: true, issuer, port })
}

main().catch((err) => {
  emit({ error: { name: err?.name, message: err?.message, stack: err?.stack } })
  process.exit(1)
})
