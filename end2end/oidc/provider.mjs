// A stand-in for Okta in the tests: npm `oidc-provider`, set up like an Okta
// custom authorization server (issuer path /oauth2/default, authorization code
// with PKCE, a `groups` claim, JWT access tokens for an API audience through a
// resource indicator).
//
// Env: OIDC_PORT (0 = any), OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
// OIDC_REDIRECT_URIS (comma-separated), OIDC_AUDIENCE (default api://tollgate).
// A second client, api-tester / api-tester-secret (redirect http://127.0.0.1:9/cb),
// stands for an app that gets JWT access tokens for the API.
// Prints "oidc-provider listening on <issuer>" once it listens.
//
// Accounts: any login name is accepted by the provider's built-in login form
// (devInteractions) with any password; the subject is the login name, the email
// is the login (or login@example.com), and logins starting with "admin" are in
// the group "tollgate-admins" (everyone is in "everyone").
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT ?? 0);
const audience = process.env.OIDC_AUDIENCE ?? 'api://tollgate';
const clientId = process.env.OIDC_CLIENT_ID ?? 'tollgate';
const clientSecret = process.env.OIDC_CLIENT_SECRET ?? 'tollgate-secret';
const redirectUris = (process.env.OIDC_REDIRECT_URIS ?? 'http://127.0.0.1:4000/ui/oidc/callback')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const mount = '/oauth2/default';
const scopes = 'openid email profile groups';

function claimsOf(id) {
  const email = id.includes('@') ? id : `${id}@example.com`;
  const groups = ['everyone'];
  if (id.startsWith('admin')) groups.push('tollgate-admins');
  return { sub: id, email, email_verified: true, name: id, groups };
}

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}${mount}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      // An app of the company's that gets access tokens for Tollgate's API
      // (its redirect is never followed by the tests: they read the code off it).
      {
        client_id: 'api-tester',
        client_secret: 'api-tester-secret',
        redirect_uris: ['http://127.0.0.1:9/cb'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // As Okta can: the ID token carries the scopes' claims (email, groups).
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => claimsOf(id),
    }),
    // No consent screen: the test client is trusted, as an Okta admin would set it.
    loadExistingGrant: async (ctx) => {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(scopes);
      grant.addResourceScope(audience, scopes);
      await grant.save();
      return grant;
    },
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: scopes,
          audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 3600,
        }),
      },
    },
    cookies: { keys: ['tollgate-test-oidc-cookie-key'] },
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === mount || req.url.startsWith(`${mount}/`)) {
      req.originalUrl = req.url;
      req.url = req.url.slice(mount.length) || '/';
      callback(req, res);
    } else {
      res.statusCode = 404;
      res.end('not found');
    }
  });
  console.log(`oidc-provider listening on ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
