// A real OpenID Connect provider for the workspace's auth tests.
//
// Why: the server's OIDC login must be tested against a real, standards-conformant provider
// (this is the OpenID Certified `oidc-provider` package), not a mock. The login and consent
// pages here are deliberately plain HTML forms with no password, so a test's HTTP client can
// log in without a browser. `OidcProvider` in `../src/oidc.rs` starts this script.
//
// Usage: node provider.mjs [port]      (port 0 or none: any free port)
//
// Environment (all optional):
//   OIDC_PORT               port when none is given on the command line
//   OIDC_CLIENT_ID          the one confidential client             (default "openhands-test")
//   OIDC_CLIENT_SECRET      its secret, for client_secret_basic/post (default "openhands-test-secret")
//   OIDC_REDIRECT_URIS      its redirect URIs, comma-separated     (default "http://127.0.0.1/callback")
//   OIDC_POST_LOGOUT_REDIRECT_URIS  comma-separated                  (default none)
//   OIDC_USERS              JSON array of accounts that may log in, e.g.
//                           '[{"sub":"alice","email":"alice@example.com","email_verified":true}]'
//                           (any other claims given are returned as they are)
//   OIDC_ACCESS_TOKEN_TTL   access token lifetime in seconds (default 300); short for refresh tests
//   OIDC_ID_TOKEN_TTL       ID token lifetime in seconds (default 300)
//   OIDC_REFRESH_TOKEN_TTL  refresh token lifetime in seconds (default 86400)
//   OIDC_CLOCK_TOLERANCE    seconds an expired token is still accepted (default 0: everything
//                           runs on one clock, and expiry tests want it exact)
//   OIDC_EXIT_ON_STDIN_CLOSE=1  exit when stdin closes, so the provider never outlives the
//                           test process that started it (even one that aborts)
//   OIDC_ADMIN_PASSWORD     turns on the slice of Keycloak's admin REST API the server's
//                           e-mail routes use (below), for user `admin` of realm `master`
//
// Keycloak's admin API, as far as the e-mail routes need it (same paths, bodies and codes):
//   POST /realms/master/protocol/openid-connect/token  grant_type=password, client_id=admin-cli,
//        username=admin, password=<OIDC_ADMIN_PASSWORD>  -> {access_token, expires_in}
//   GET  /admin/realms/<realm>/users/<id>               -> UserRepresentation (404 unknown)
//   PUT  /admin/realms/<realm>/users/<id>               JSON {email, emailVerified, ...}
//        -> 204; 409 when another account has the address. The new claims show in the
//        next tokens (a refresh), as in Keycloak.
//   PUT  /admin/realms/<realm>/users/<id>/send-verify-email?redirect_uri=..&client_id=..
//        -> 204; the "e-mail" is recorded instead of sent.
// And for tests, standing in for the user's inbox:
//   GET  /test/verify-emails                 -> [{user, email, redirect_uri, client_id}]
//   POST /test/users/<id>/verify             -> the user "clicked the link": email_verified
//
// Prints `READY <issuer>` on stdout once it answers requests; the issuer is
// `http://127.0.0.1:<port>`.
//
// The browserless login, as `OidcProvider::login` in `../src/oidc.rs` drives it (keep cookies
// from every response and send them back; do not follow redirects automatically):
//   1. GET  <authorization_endpoint>?response_type=code&client_id=..&redirect_uri=..
//           &scope=openid email profile offline_access&state=..&nonce=..
//           &code_challenge=..&code_challenge_method=S256[&prompt=consent]
//        -> 303 to /interaction/<uid> (sets the `_interaction*` cookies)
//   2. GET  /interaction/<uid>          -> 200 login form, action /interaction/<uid>/login
//   3. POST /interaction/<uid>/login    form `login=<sub>`  -> 303 to /auth/<uid>
//   4. GET  /auth/<uid>                 -> 303 to /interaction/<uid2> (consent; sets `_session`)
//   5. GET  /interaction/<uid2>         -> 200 consent form, action /interaction/<uid2>/confirm
//   6. POST /interaction/<uid2>/confirm (empty form) -> 303 to /auth/<uid2>
//   7. GET  /auth/<uid2>                -> 303 to <redirect_uri>?code=..&state=..&iss=..
// A later login in the same cookie session skips steps 2-6 when consent was already given.
// `offline_access` is kept only with `prompt=consent` (as the OIDC spec says), but a refresh
// token is issued either way, as Keycloak does.
// POST /interaction/<uid>/abort ends the login with `error=access_denied`.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const env = process.env;
const seconds = (name, fallback) => {
  const value = Number(env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number`);
  return value;
};
const list = (value) => (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);

const users = new Map(JSON.parse(env.OIDC_USERS ?? '[]').map((user) => [String(user.sub), user]));
const client = {
  client_id: env.OIDC_CLIENT_ID ?? 'openhands-test',
  client_secret: env.OIDC_CLIENT_SECRET ?? 'openhands-test-secret',
  redirect_uris: list(env.OIDC_REDIRECT_URIS ?? 'http://127.0.0.1/callback'),
  post_logout_redirect_uris: list(env.OIDC_POST_LOGOUT_REDIRECT_URIS),
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};

// A fresh signing key per run, so no key material lives in the repository.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' };

const configuration = (issuer) => ({
  clients: [client],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'given_name', 'family_name', 'picture'],
  },
  // Put the scope's claims (email, ...) in the ID token too, as Keycloak does.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  clockTolerance: seconds('OIDC_CLOCK_TOLERANCE', 0),
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  ttl: {
    AccessToken: seconds('OIDC_ACCESS_TOKEN_TTL', 300),
    IdToken: seconds('OIDC_ID_TOKEN_TTL', 300),
    RefreshToken: seconds('OIDC_REFRESH_TOKEN_TTL', 86400),
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
  issueRefreshToken: async (_ctx, oidcClient) => oidcClient.grantTypeAllowed('refresh_token'),
  findAccount: async (_ctx, sub) => {
    const user = users.get(sub);
    return user && { accountId: sub, claims: async () => ({ ...user, sub }) };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'text/plain';
    ctx.body = `error: ${out.error}\n${out.error_description ?? ''}\n`;
  },
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (res, status, title, body) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!DOCTYPE html><html><head><title>${escape(title)}</title></head><body>${body}</body></html>`);
};
const readForm = async (req) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
};

// The login and consent pages: the part `oidc-provider` leaves to each deployment.
async function interaction(provider, req, res, path) {
  const [, , uid, action] = path.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, 'Error', '<p>interaction mismatch</p>');
  const { prompt, params } = details;

  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') {
      return page(res, 200, 'Sign in', `<h1>Sign in to ${escape(params.client_id)}</h1>
<form method="post" action="/interaction/${uid}/login">
<input type="text" name="login" placeholder="username" autofocus>
<button type="submit">Sign in</button></form>
<form method="post" action="/interaction/${uid}/abort"><button type="submit">Cancel</button></form>`);
    }
    return page(res, 200, 'Authorize', `<h1>Authorize ${escape(params.client_id)}</h1>
<p>Scopes: ${escape(params.scope)}</p>
<form method="post" action="/interaction/${uid}/confirm"><button type="submit">Allow</button></form>
<form method="post" action="/interaction/${uid}/abort"><button type="submit">Deny</button></form>`);
  }
  if (req.method !== 'POST') return page(res, 405, 'Error', '<p>method not allowed</p>');

  if (action === 'login' && prompt.name === 'login') {
    const login = (await readForm(req)).get('login') ?? '';
    if (!users.has(login)) return page(res, 403, 'Sign in', '<p>unknown user</p>');
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  if (action === 'confirm' && prompt.name === 'consent') {
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (action === 'abort') {
    const result = { error: 'access_denied', error_description: 'the user cancelled' };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  return page(res, 400, 'Error', `<p>unexpected ${escape(action)} for prompt ${escape(prompt.name)}</p>`);
}

// The Keycloak admin API slice (see the top of the file).
const adminTokens = new Set();
const verifyEmails = [];
const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body === undefined ? '' : JSON.stringify(body));
};
const readBody = async (req) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body;
};
const representation = (id, user) => ({
  id, username: id, email: user.email, emailVerified: Boolean(user.email_verified), enabled: true,
});
async function admin(req, res, url) {
  const path = url.pathname;
  if (path === '/realms/master/protocol/openid-connect/token' && req.method === 'POST') {
    const form = new URLSearchParams(await readBody(req));
    const ok = form.get('grant_type') === 'password' && form.get('client_id') === 'admin-cli'
      && form.get('username') === 'admin' && form.get('password') === env.OIDC_ADMIN_PASSWORD;
    if (!ok) return json(res, 401, { error: 'invalid_grant', error_description: 'Invalid user credentials' });
    const token = randomBytes(24).toString('hex');
    adminTokens.add(token);
    return json(res, 200, { access_token: token, expires_in: 60, token_type: 'Bearer' });
  }
  if (path === '/test/verify-emails' && req.method === 'GET') return json(res, 200, verifyEmails);
  const verify = path.match(/^\/test\/users\/([^/]+)\/verify$/);
  if (verify && req.method === 'POST') {
    const user = users.get(decodeURIComponent(verify[1]));
    if (!user) return json(res, 404, { error: 'User not found' });
    user.email_verified = true;
    return json(res, 204);
  }
  const m = path.match(/^\/admin\/realms\/[^/]+\/users\/([^/]+)(\/send-verify-email)?$/);
  if (!m) return null;
  const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
  if (!adminTokens.has(bearer)) return json(res, 401, { error: 'HTTP 401 Unauthorized' });
  const id = decodeURIComponent(m[1]);
  const user = users.get(id);
  if (!user) return json(res, 404, { error: 'User not found' });
  if (m[2] && req.method === 'PUT') {
    verifyEmails.push({
      user: id, email: user.email,
      redirect_uri: url.searchParams.get('redirect_uri'), client_id: url.searchParams.get('client_id'),
    });
    return json(res, 204);
  }
  if (!m[2] && req.method === 'GET') return json(res, 200, representation(id, user));
  if (!m[2] && req.method === 'PUT') {
    const update = JSON.parse(await readBody(req));
    if (update.email !== undefined) {
      for (const [other, account] of users) {
        if (other !== id && account.email === update.email) {
          return json(res, 409, { errorMessage: 'User exists with same email' });
        }
      }
      user.email = update.email;
    }
    if (update.emailVerified !== undefined) user.email_verified = Boolean(update.emailVerified);
    return json(res, 204);
  }
  return json(res, 405, { error: 'method not allowed' });
}

let handler = (_req, res) => { res.writeHead(503); res.end(); };
const server = createServer((req, res) => handler(req, res));
server.listen(Number(process.argv[2] ?? env.OIDC_PORT ?? 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration(issuer));
  const callback = provider.callback();
  handler = async (req, res) => {
    const url = new URL(req.url, issuer);
    const path = url.pathname;
    if (env.OIDC_ADMIN_PASSWORD) {
      const handled = await admin(req, res, url).catch((err) => json(res, 400, { error: err.message }));
      if (handled !== null) return;
    }
    if (!path.startsWith('/interaction/')) return callback(req, res);
    return interaction(provider, req, res, path).catch((err) => {
      if (!res.headersSent) page(res, 400, 'Error', `<p>${escape(err.message)}</p>`);
      else res.end();
    });
  };
  console.log(`READY ${issuer}`);
});

// The test harness kills this process; exit promptly on the usual signals too.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
if (env.OIDC_EXIT_ON_STDIN_CLOSE === '1') {
  process.stdin.on('close', () => process.exit(0)).resume();
}
