import { test, expect, Page, Locator } from '@playwright/test';

// The console's admin flows, end to end: people, teams and keys made in the
// browser, a key used through the API, its spend seen on the dashboard; what
// a user who is not an admin may see; the main flows by keyboard alone.
// Every page visited is saved as a screenshot (test-results/, and attached
// to the report).

const master = process.env.TOLLGATE_MASTER_KEY ?? '';
const base = process.env.TOLLGATE_URL ?? '';
const run = Date.now().toString(36);

async function shot(page: Page, name: string) {
  const path = test.info().outputPath(`${name}.png`);
  await page.screenshot({ path, fullPage: true });
  await test.info().attach(name, { path, contentType: 'image/png' });
}

async function signIn(page: Page, password: string, email = '') {
  await page.goto('/ui/login');
  if (email) await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password or master key').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/ui/dashboard');
  await hydrated(page);
}

async function hydrated(page: Page) {
  await expect(page.locator('.app[data-hydrated="true"]')).toBeVisible();
}

async function open(page: Page, path: string) {
  await page.goto(path);
  await hydrated(page);
}

async function api(path: string, body: unknown, key = master) {
  const r = await fetch(base + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

/** Presses Tab until `target` has focus (at most `max` times). */
async function tabTo(page: Page, target: Locator, max = 40) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((el) => el === document.activeElement)) return;
  }
  throw new Error('could not reach the element with Tab');
}

test.describe('console', () => {
  test('an admin creates a user, a team and a key; the key is used and its spend shows on the dashboard', async ({ page }) => {
    await signIn(page, master);
    await shot(page, 'dashboard');
    const nav = page.getByRole('navigation', { name: 'Console' });
    for (const name of ['Dashboard', 'Keys', 'Logs', 'Users', 'Teams', 'Models']) {
      await expect(nav.getByRole('link', { name })).toBeVisible();
    }

    // A user.
    const email = `e2e-${run}@example.com`;
    await open(page, '/ui/users');
    await page.getByText('Add user').first().click();
    const userForm = page.getByTestId('new-user');
    await userForm.getByLabel('Email').fill(email);
    await userForm.getByLabel('Password').fill('short');
    await userForm.getByRole('button', { name: 'Add user' }).click();
    // Refused: the form says why and keeps what was typed.
    await expect(userForm.getByTestId('error')).toContainText('8');
    await expect(userForm.getByLabel('Email')).toHaveValue(email);
    await userForm.getByLabel('Password').fill('a long enough password');
    await userForm.getByRole('button', { name: 'Add user' }).click();
    await expect(userForm.getByTestId('user-created')).toBeVisible();
    await expect(page.getByTestId('user-row').filter({ hasText: email })).toBeVisible();
    await shot(page, 'users');

    // A team, with the user as its admin.
    const team = `e2e-team-${run}`;
    await open(page, '/ui/teams');
    await page.getByText('Create team').first().click();
    const teamForm = page.getByTestId('new-team');
    await teamForm.getByLabel('Name').fill(team);
    await teamForm.getByLabel('Max budget ($)').fill('25');
    await teamForm.getByRole('button', { name: 'Create team' }).click();
    const card = page.getByTestId('team-card').filter({ hasText: team });
    await expect(card).toBeVisible();
    await card.getByLabel('User id or email').fill(email);
    await card.getByLabel('Role').selectOption('admin');
    await card.getByRole('button', { name: 'Add member' }).click();
    await expect(card.getByTestId('member-row').filter({ hasText: email })).toContainText('admin');
    await shot(page, 'teams');

    // A key: a wrong budget is named and kept; then the secret is shown once.
    const alias = `e2e-key-${run}`;
    await open(page, '/ui/keys');
    await page.getByText('Create key').first().click();
    const keyForm = page.getByTestId('new-key');
    await keyForm.getByLabel('Alias').fill(alias);
    await keyForm.getByLabel('Max budget ($)').fill('ten');
    await keyForm.getByRole('button', { name: 'Create key' }).click();
    await expect(keyForm.getByTestId('error')).toContainText('max_budget');
    await expect(keyForm.getByLabel('Max budget ($)')).toHaveValue('ten');
    await expect(keyForm.getByLabel('Max budget ($)')).toHaveAttribute('aria-invalid', 'true');
    await keyForm.getByLabel('Max budget ($)').fill('10');
    await keyForm.getByRole('button', { name: 'Create key' }).click();
    const secret = page.getByTestId('secret-value');
    await expect(secret).toHaveValue(/^sk-/);
    const key = await secret.inputValue();
    await expect(page.getByTestId('key-row').filter({ hasText: alias })).toContainText('$10');
    await shot(page, 'keys');

    // The key works through the API, and what it spent reaches the dashboard.
    const answer = await api('/v1/chat/completions', {
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Say hello to the dashboard.' }],
    }, key);
    expect(answer.choices[0].message.content.length).toBeGreaterThan(0);
    await expect(async () => {
      await open(page, '/ui/dashboard?range=24h');
      const row = page.getByTestId('top-keys').getByRole('row').filter({ hasText: alias });
      await expect(row).toBeVisible({ timeout: 1000 });
      await expect(row.getByRole('cell').nth(1)).not.toHaveText('$0');
    }).toPass({ timeout: 20_000 });
    await expect(page.getByTestId('total-requests')).not.toHaveText('0');
    await shot(page, 'dashboard-with-spend');

    // The call is in the request log, with its details.
    await open(page, `/ui/logs?key=${alias}`);
    const logRow = page.getByTestId('log-row').first();
    await expect(logRow).toContainText('gpt-4o');
    await logRow.getByRole('button', { name: 'Details' }).click();
    await expect(page.getByTestId('log-detail')).toContainText(alias);
    await shot(page, 'logs');

    // Deleting asks first.
    await open(page, '/ui/keys');
    const row = page.getByTestId('key-row').filter({ hasText: alias });
    await row.getByTestId('delete-key').click();
    await expect(row.getByRole('group')).toContainText(`Delete ${alias}?`);
    await row.getByTestId('confirm-yes').click();
    await expect(page.getByTestId('key-row').filter({ hasText: alias })).toHaveCount(0);

    await open(page, '/ui/models');
    await shot(page, 'models');
  });

  test('a user who is not an admin sees only their own keys and no admin pages', async ({ page }) => {
    const mine = `mine-${run}`;
    const theirs = `theirs-${run}`;
    const email = `user-${run}@example.com`;
    await api('/user/new', { user_email: email, password: 'user password 1', user_role: 'internal_user', auto_create_key: false });
    await api('/key/generate', { key_alias: theirs });

    await signIn(page, 'user password 1', email);
    await expect(page.getByTestId('whoami')).toHaveText(email);
    const nav = page.getByRole('navigation', { name: 'Console' });
    await expect(nav.getByRole('link', { name: 'Keys' })).toBeVisible();
    await expect(nav.getByRole('link', { name: 'Budgets' })).toBeVisible();
    for (const name of ['Users', 'Teams', 'Models', 'Prompts', 'Guardrails']) {
      await expect(nav.getByRole('link', { name })).toHaveCount(0);
    }
    for (const path of ['/ui/users', '/ui/teams', '/ui/models', '/ui/prompts', '/ui/guardrails']) {
      const r = await page.goto(path);
      expect(r?.status()).toBe(403);
      await expect(page.getByTestId('no-access')).toBeVisible();
    }
    await shot(page, 'no-access');

    // Their own key, made here; the admin's key is not theirs to see.
    await open(page, '/ui/keys');
    await page.getByText('Create key').first().click();
    const keyForm = page.getByTestId('new-key');
    await expect(keyForm.getByLabel('User id')).toHaveCount(0);
    await keyForm.getByLabel('Alias').fill(mine);
    await keyForm.getByRole('button', { name: 'Create key' }).click();
    await expect(page.getByTestId('secret-value')).toHaveValue(/^sk-/);
    await expect(page.getByTestId('key-row').filter({ hasText: mine })).toBeVisible();
    await open(page, `/ui/keys?q=${theirs}`);
    await expect(page.getByTestId('key-row')).toHaveCount(0);
    // Nor another user's spend.
    await open(page, '/ui/logs?user=admin');
    await expect(page.getByTestId('error')).toContainText('own');
  });

  test('keyboard only: from the dashboard to a new key', async ({ page }) => {
    await signIn(page, master);
    await tabTo(page, page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Keys' }));
    await page.keyboard.press('Enter');
    await page.waitForURL('**/ui/keys');
    await hydrated(page);
    await tabTo(page, page.locator('[data-testid="new-key"] > summary'));
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    await expect(page.getByTestId('new-key').getByLabel('Alias')).toBeFocused();
    await page.keyboard.type(`keyboard-${run}`);
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('secret-value')).toHaveValue(/^sk-/);
    await expect(page.getByTestId('key-row').filter({ hasText: `keyboard-${run}` })).toBeVisible();
  });
});

test.describe('playground', () => {
  test('an answer streams in parts, is kept in the history, and can be reopened, renamed and deleted', async ({ page }) => {
    await signIn(page, master);
    await open(page, '/ui/playground');
    await page.getByTestId('model').selectOption('demo');
    const question = `Tell me about Tollgate ${run}`;
    await page.getByTestId('prompt').fill(question);
    await page.getByTestId('send').click();
    // Part of the answer is on screen while the rest is still coming.
    const partial = await page.waitForFunction(() => {
      const m = document.querySelector('[data-testid="msg-assistant"][data-streaming="true"] .bubble');
      const t = m?.textContent ?? '';
      return t.length > 0 ? t : null;
    }, undefined, { polling: 'raf', timeout: 10_000 });
    const partialText = (await partial.jsonValue()) as string;
    const answer = page.getByTestId('msg-assistant').last();
    await expect(page.getByTestId('answer-stats')).toContainText('tokens', { timeout: 15_000 });
    await expect(page.getByTestId('answer-stats')).toContainText('first token');
    const full = (await answer.locator('.bubble').textContent()) ?? '';
    expect(full.length).toBeGreaterThan(partialText.length);
    const squeeze = (t: string) => t.replace(/\s+/g, '');
    expect(squeeze(full).startsWith(squeeze(partialText).slice(0, 8))).toBeTruthy();
    await shot(page, 'playground');

    // The conversation is in the sidebar; a new chat clears the screen; reopening brings it back.
    const item = page.getByTestId('session').filter({ hasText: question });
    await expect(item).toBeVisible();
    await page.getByTestId('new-chat').click();
    await expect(page.getByTestId('msg-user')).toHaveCount(0);
    await item.getByRole('button', { name: question }).click();
    await expect(page.getByTestId('msg-user')).toHaveText([question]);
    await expect(page.getByTestId('msg-assistant')).toHaveCount(1);
    // A follow-up continues the same session.
    await page.getByTestId('prompt').fill('And one more thing?');
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('msg-assistant')).toHaveCount(2);
    await expect(page.getByTestId('answer-stats').last()).toContainText('tokens', { timeout: 15_000 });
    await expect(page.getByTestId('session').filter({ hasText: question })).toHaveCount(1);

    // Rename, then delete after confirming.
    await item.getByTestId('rename').click();
    // (While renaming, the title is in the input, so the item is found by it.)
    await page.getByTestId('rename-input').fill(`Renamed ${run}`);
    await page.getByTestId('session').getByRole('button', { name: 'Save' }).click();
    const renamed = page.getByTestId('session').filter({ hasText: `Renamed ${run}` });
    await expect(renamed).toBeVisible();
    await renamed.getByTestId('delete-session').click();
    await renamed.getByTestId('confirm-yes').click();
    await expect(page.getByTestId('session').filter({ hasText: `Renamed ${run}` })).toHaveCount(0);
  });

  test('compare sends one prompt to two models side by side, with times, tokens and cost', async ({ page }) => {
    await signIn(page, master);
    await open(page, '/ui/playground?mode=compare');
    const picks = page.getByTestId('compare-model');
    for (const box of await picks.all()) await box.uncheck();
    await page.getByRole('checkbox', { name: 'gpt-4o' }).check();
    await page.getByRole('checkbox', { name: 'claude-3-5-sonnet' }).check();
    await page.getByTestId('compare-prompt').fill('Which is faster?');
    await page.getByTestId('compare-run').click();
    const cols = page.getByTestId('compare-col');
    await expect(cols).toHaveCount(2);
    for (const col of await cols.all()) {
      await expect(col.getByTestId('compare-stats')).not.toContainText('—', { timeout: 15_000 });
      await expect(col.locator('.bubble')).not.toBeEmpty();
    }
    await shot(page, 'compare');
  });

  test("a user's playground answers are theirs: logged under their id", async ({ page }) => {
    const email = `player-${run}@example.com`;
    const user = await api('/user/new', { user_email: email, password: 'player password', user_role: 'internal_user', auto_create_key: false });
    await signIn(page, 'player password', email);
    await open(page, '/ui/playground');
    await page.getByTestId('model').selectOption('gpt-4o');
    await page.getByTestId('prompt').fill('Count this against my budget.');
    await page.getByTestId('send').click();
    await expect(page.getByTestId('answer-stats')).toContainText('$', { timeout: 15_000 });
    const r = await fetch(`${base}/spend/logs?user_id=${encodeURIComponent(user.user_id)}`, {
      headers: { authorization: `Bearer ${master}` },
    });
    const rows = await r.json();
    expect(rows.length).toBe(1);
    expect(rows[0].model).toBe('gpt-4o');
    expect(rows[0].spend).toBeGreaterThan(0);
  });
});
