// A real OpenID Provider (panva/oidc-provider) for Rechenwerk's tests.
// Usage: node provider.mjs CONFIG.json   (CONFIG written by tests/oidc_provider/fixture)
// CONFIG: {"issuer", "port", "clients": [...], "jwks": {"keys": [...]}, "accounts_file"};
// the test users and their claims are in accounts.json beside this file (or the file
// "accounts_file" names, read at every sign-in, so a test can change a user's claims
// at the provider). Prints "listening" when ready.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Provider from 'oidc-provider';

const here = path.dirname(fileURLToPath(import.meta.url));
const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accountsFile = cfg.accounts_file || path.join(here, 'accounts.json');
const accounts = () => JSON.parse(fs.readFileSync(accountsFile, 'utf8'));
const SCOPES = 'openid email profile eduperson_entitlement schac_home_organization';

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8">
<title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${body}</body></html>`;

const provider = new Provider(cfg.issuer, {
  clients: cfg.clients,
  jwks: cfg.jwks,
  cookies: { keys: ['rechenwerk-test-provider-only'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    eduperson_entitlement: ['eduperson_entitlement'],
    schac_home_organization: ['schac_home_organization'],
  },
  scopes: SCOPES.split(' '),
  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      userCodeInputSource: async (ctx, form, out, err) => {
        const msg = err ? '<p class="error">The code you entered is incorrect.</p>' : '';
        ctx.body = page('Enter your device code', `${msg}${form}
          <label>Code <input name="user_code" form="op.deviceInputForm"></label>
          <button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      userCodeConfirmSource: async (ctx, form, client, deviceInfo, userCode) => {
        ctx.body = page('Confirm device', `<p>Code <code>${esc(userCode)}</code></p>${form}
          <button type="submit" form="op.deviceConfirmForm" name="confirm" value="yes">Confirm</button>
          <button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`);
      },
      successSource: async (ctx) => {
        ctx.body = page('Device signed in', '<p>You may close this window.</p>');
      },
    },
  },
  ttl: { IdToken: cfg.id_token_ttl_s || 3600 },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // First-party test clients: every requested scope is granted without a consent page.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(SCOPES);
    await grant.save();
    ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId, grant.jti);
    return grant;
  },
  findAccount: async (ctx, id) => {
    const account = accounts()[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account.claims }) };
  },
});

// The login page of an interaction: username + password against accounts.json.
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!m) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = page('Sign in to the test provider', `
      <form method="post" action="/interaction/${esc(details.uid)}/login">
        <label>Username <input name="login" autocomplete="username"></label>
        <label>Password <input name="password" type="password"></label>
        <button type="submit">Sign in</button>
      </form>`);
    return undefined;
  }
  const raw = await new Promise((resolve) => {
    let data = '';
    ctx.req.on('data', (chunk) => { data += chunk; });
    ctx.req.on('end', () => resolve(data));
  });
  const form = new URLSearchParams(raw);
  const account = accounts()[form.get('login')];
  if (!account || account.password !== form.get('password')) {
    ctx.status = 401;
    ctx.type = 'html';
    ctx.body = page('Wrong username or password', '');
    return undefined;
  }
  await provider.interactionFinished(ctx.req, ctx.res,
    { login: { accountId: form.get('login') } }, { mergeWithLastSubmission: false });
  return undefined;
});

provider.listen(cfg.port, '127.0.0.1', () => { console.log('listening'); });
