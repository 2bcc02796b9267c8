import { test, expect, Page } from '@playwright/test';

// The console's other admin pages: models added, tested, changed and deleted
// in the browser; a prompt written, previewed with its variables and given a
// new version; budgets changed in place; the guardrails and who turns them on;
// a key's expiry and a user's budget edited. Each page is saved as a screenshot.

const master = process.env.TOLLGATE_MASTER_KEY ?? '';
const base = process.env.TOLLGATE_URL ?? '';
const run = Date.now().toString(36);

async function shot(page: Page, name: string) {
  const path = test.info().outputPath(`${name}.png`);
  await page.screenshot({ path, fullPage: true });
  await test.info().attach(name, { path, contentType: 'image/png' });
}

async function hydrated(page: Page) {
  await expect(page.locator('.app[data-hydrated="true"]')).toBeVisible();
}

async function signIn(page: Page) {
  await page.goto('/ui/login');
  await page.getByLabel('Password or master key').fill(master);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/ui/dashboard');
  await hydrated(page);
}

async function open(page: Page, path: string) {
  await page.goto(path);
  await hydrated(page);
}

async function api(path: string, body: unknown) {
  const r = await fetch(base + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${master}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

test.describe('admin pages', () => {
  test('a model is added, tested, changed and deleted; config deployments are tested but not edited', async ({ page }) => {
    const name = `added-${run}`;
    await signIn(page);
    await open(page, '/ui/models');
    await page.getByText('Add model').first().click();
    const form = page.getByTestId('new-model');
    await form.getByLabel('Model name').fill(name);
    await form.getByLabel('Provider/model').fill('demo/tollgate-demo');
    await form.getByLabel('Weight').fill('heavy');
    await form.getByRole('button', { name: 'Add model' }).click();
    // Refused: the field is named and what was typed is kept.
    await expect(form.getByLabel('Weight')).toHaveAttribute('aria-invalid', 'true');
    await expect(form.getByLabel('Model name')).toHaveValue(name);
    await form.getByLabel('Weight').fill('2');
    await form.getByRole('button', { name: 'Add model' }).click();
    await expect(form.getByTestId('model-saved')).toBeVisible();

    const group = page.locator(`[data-testid="model-group"][data-model="${name}"]`);
    await expect(group).toBeVisible();
    const row = group.getByTestId('deployment');
    await row.getByTestId('test-model').click();
    await expect(row.getByTestId('test-result')).toContainText(/answered in [\d.,]+ ms/);
    await expect(row.getByTestId('health')).toHaveText('healthy');
    await shot(page, 'models-admin');

    // Changed in place: a new weight.
    await row.getByTestId('edit-model').click();
    const edit = row.getByTestId('model-form');
    await expect(edit.getByLabel('Provider/model')).toHaveValue('demo/tollgate-demo');
    await edit.getByLabel('Weight').fill('3');
    // Its own prices (typed per million tokens) and context window.
    await edit.getByLabel('Input $ / 1M tokens').fill('-4');
    await edit.getByRole('button', { name: 'Save' }).click();
    await expect(edit.getByLabel('Input $ / 1M tokens')).toHaveAttribute('aria-invalid', 'true');
    await expect(edit.getByLabel('Weight')).toHaveValue('3');
    await edit.getByLabel('Input $ / 1M tokens').fill('4');
    await edit.getByLabel('Output $ / 1M tokens').fill('8');
    await edit.getByLabel('Context window').fill('8000');
    await edit.getByRole('button', { name: 'Save' }).click();
    await expect(group.locator('td[data-label="Weight"]')).toContainText(/^3/);
    await expect(group.getByTestId('pricing')).toHaveText('$4 · $8 / 1M · 8k');

    // The new model answers through the API at once, priced as set.
    const r = await fetch(base + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${master}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: name, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(r.status).toBe(200);
    const usage = (await r.json()).usage;
    const requestId = r.headers.get('x-request-id');
    await expect(async () => {
      const logs = await (await fetch(`${base}/spend/logs?request_id=${requestId}`, {
        headers: { authorization: `Bearer ${master}` },
      })).json();
      expect(logs).toHaveLength(1);
      expect(logs[0].spend).toBeCloseTo((usage.prompt_tokens * 4 + usage.completion_tokens * 8) / 1e6, 12);
    }).toPass({ timeout: 10_000 });

    // A config deployment: tested, not editable.
    const config = page.locator('[data-testid="model-group"][data-model="gpt-4o"]').getByTestId('deployment').first();
    await expect(config.getByTestId('edit-model')).toHaveCount(0);
    await config.getByTestId('test-model').click();
    await expect(config.getByTestId('test-result')).toContainText('ms');

    await group.getByTestId('delete-model').click();
    await group.getByTestId('confirm-yes').click();
    await expect(page.locator(`[data-testid="model-group"][data-model="${name}"]`)).toHaveCount(0);
  });

  test('a prompt is written, previewed with its variables, versioned and deleted', async ({ page }) => {
    const name = `brief-${run}`;
    await signIn(page);
    await open(page, '/ui/prompts');
    await page.getByText('New prompt').first().click();
    const form = page.getByTestId('new-prompt');
    await form.getByLabel('Name').fill(name);
    await form.getByLabel('Model').fill('demo');
    // No message written yet: refused, and the messages are marked.
    await form.getByTestId('save-prompt').click();
    await expect(form.locator('fieldset.messages-editor')).toHaveAttribute('aria-invalid', 'true');
    const messages = form.getByTestId('message-editor');
    await messages.nth(0).getByLabel('Message', { exact: true }).fill('You know {{topic}}.');
    await messages.nth(1).getByLabel('Message', { exact: true }).fill('Tell me about {{topic}} in {{count}} words.');
    await form.getByTestId('save-prompt').click();

    const panel = page.getByTestId('prompt-panel');
    await expect(panel.getByTestId('prompt-name')).toHaveText(name);
    await expect(panel.getByTestId('prompt-arn')).toContainText(':prompt/');
    await expect(page.getByTestId('prompt-row').filter({ hasText: name })).toContainText('topic, count');

    // The preview fills what is given and names what is not.
    const preview = panel.getByTestId('preview');
    await preview.getByLabel('{{topic}}').fill('tea');
    await preview.getByTestId('render').click();
    await expect(preview.getByTestId('rendered')).toContainText('You know tea.');
    await expect(preview.getByTestId('rendered')).toContainText('Tell me about tea in {{count}} words.');
    await expect(preview.getByTestId('missing')).toContainText('count');
    await shot(page, 'prompts');

    // A new version.
    await panel.getByTestId('new-version').click();
    const edit = panel.getByTestId('prompt-form');
    await edit.getByTestId('message-editor').nth(1).getByLabel('Message', { exact: true }).fill('Sum up {{topic}}.');
    await edit.getByTestId('save-prompt').click();
    await expect(panel.getByTestId('versions')).toContainText('v2 (latest)');
    await expect(panel.getByTestId('template')).toContainText('Sum up {{topic}}.');
    // The first version is still there.
    await panel.getByTestId('versions').getByRole('link', { name: 'v1' }).click();
    await expect(page.getByTestId('prompt-panel').getByTestId('template')).toContainText('in {{count}} words');

    await page.getByTestId('prompt-panel').getByTestId('delete-prompt').click();
    await page.getByTestId('prompt-panel').getByTestId('confirm-yes').click();
    await expect(page.getByTestId('prompt-row').filter({ hasText: name })).toHaveCount(0);
  });

  test('budgets are listed fullest first and changed in place; keys and users get expiry and budgets', async ({ page }) => {
    const alias = `budgeted-${run}`;
    const made = await api('/key/generate', { key_alias: alias, max_budget: 5 });
    const email = `budget-${run}@example.com`;
    await api('/user/new', { user_email: email, max_budget: 7, auto_create_key: false });
    await signIn(page);

    await open(page, `/ui/budgets?q=${run}`);
    const row = page.getByTestId('budget-row').filter({ hasText: alias });
    await expect(row).toContainText('$5');
    await expect(page.getByTestId('budget-row').filter({ hasText: email })).toContainText('$7');
    await row.getByTestId('edit-budget').click();
    const form = page.getByTestId('edit-budget-form');
    await form.getByLabel('Max budget ($)').fill('lots');
    await form.getByRole('button', { name: 'Save' }).click();
    await expect(form.getByLabel('Max budget ($)')).toHaveAttribute('aria-invalid', 'true');
    await form.getByLabel('Max budget ($)').fill('20');
    await form.getByLabel('Resets every').fill('30d');
    await form.getByRole('button', { name: 'Save' }).click();
    await expect(row).toContainText('$20');
    await expect(row).toContainText('30d');
    await shot(page, 'budgets');
    const info = await (await fetch(`${base}/key/info?key=${made.token}`, { headers: { authorization: `Bearer ${master}` } })).json();
    expect(info.info.max_budget).toBe(20);
    expect(info.info.budget_duration).toBe('30d');

    // A key's expiry, set from its edit form.
    await open(page, `/ui/keys?q=${alias}`);
    const keyRow = page.getByTestId('key-row').filter({ hasText: alias });
    await expect(keyRow).toContainText('never');
    await keyRow.getByRole('button', { name: 'Edit' }).click();
    const keyForm = page.getByTestId('edit-key');
    await expect(keyForm.getByTestId('key-expiry')).toContainText('Does not expire');
    await keyForm.getByLabel('Expires in').fill('7d');
    await keyForm.getByRole('button', { name: 'Save' }).click();
    await expect(keyRow).not.toContainText('never');
    const after = await (await fetch(`${base}/key/info?key=${made.token}`, { headers: { authorization: `Bearer ${master}` } })).json();
    const days = (Date.parse(after.info.expires) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(6.9);
    expect(days).toBeLessThan(7.1);

    // A user's budget, from the Users page.
    await open(page, `/ui/users?q=${email}`);
    const userRow = page.getByTestId('user-row').filter({ hasText: email });
    await userRow.getByTestId('edit-user').click();
    const userForm = page.getByTestId('edit-user-form');
    await expect(userForm.getByLabel('Max budget ($)')).toHaveValue('7');
    await userForm.getByLabel('Max budget ($)').fill('12.5');
    await userForm.getByRole('button', { name: 'Save' }).click();
    await expect(userRow).toContainText('$12.50');
  });

  test('guardrails show how they run and which keys turn them on', async ({ page }) => {
    const alias = `guarded-${run}`;
    await api('/key/generate', { key_alias: alias, guardrails: ['mask-emails'] });
    await signIn(page);
    await open(page, '/ui/guardrails');
    const row = page.locator('[data-testid="guardrail-row"][data-name="mask-emails"]');
    await expect(row).toContainText('pre_call');
    await expect(row.getByTestId('on-for')).toContainText(alias);
    await shot(page, 'guardrails');
  });

  test('long lists page on the server: models by filter, the log back and forth; owners shown by email', async ({ page }) => {
    // 52 stored model groups: more than one page of 50.
    const prefix = `paged-${run}`;
    const ids = Array.from({ length: 52 }, (_, i) => `${prefix}-${String(i).padStart(2, '0')}`);
    for (const id of ids) {
      await api('/model/new', {
        model_name: id,
        litellm_params: { model: 'openai/gpt-4o-mini', api_base: 'http://127.0.0.1:9/v1' },
        model_info: { id },
      });
    }
    try {
      await signIn(page);
      await open(page, `/ui/models?q=${prefix}`);
      const names = page.getByTestId('model-name');
      await expect(page.getByTestId('model-count')).toHaveText(/^52 of \d+ model groups$/);
      await expect(names).toHaveCount(50);
      await expect(names.first()).toHaveText(`${prefix}-00`);
      await expect(page.getByTestId('pager')).toContainText('Page 1 of 2');
      await page.getByTestId('pager').getByRole('link', { name: 'Next →' }).click();
      await expect(names).toHaveText([`${prefix}-50`, `${prefix}-51`]);
      expect(new URL(page.url()).searchParams.get('page')).toBe('2');
      // Typing filters the whole list on the server, from its first page.
      await page.getByTestId('model-filter').fill(`${prefix}-1`);
      await expect(names).toHaveCount(10);
      await expect(names.first()).toHaveText(`${prefix}-10`);
      await expect(page.getByTestId('pager')).toHaveCount(0);
      expect(new URL(page.url()).searchParams.get('page')).toBeNull();
      await shot(page, 'models-paged');
    } finally {
      for (const id of ids) await api('/model/delete', { id });
    }

    // 105 calls by one user's key: three pages of the log.
    const email = `paged-${run}@example.com`;
    const user = await api('/user/new', { user_email: email, auto_create_key: false });
    const alias = `paged-key-${run}`;
    const made = await api('/key/generate', { key_alias: alias, user_id: user.user_id });
    const call = (i: number) =>
      fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${made.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: `call ${i}` }] }),
      }).then((r) => expect(r.status).toBe(200));
    for (let i = 0; i < 105; i += 15) {
      await Promise.all(Array.from({ length: Math.min(15, 105 - i) }, (_, j) => call(i + j)));
    }
    await expect(async () => {
      const r = await fetch(`${base}/spend/logs?api_key=${made.token}&limit=200`, {
        headers: { authorization: `Bearer ${master}` },
      });
      expect((await r.json()).length).toBe(105);
    }).toPass({ timeout: 20_000 });

    await open(page, `/ui/keys?q=${alias}`);
    await expect(page.getByTestId('key-row').filter({ hasText: alias }).getByTestId('key-owner')).toHaveText(email);

    const rows = page.getByTestId('log-row');
    const times = async () => (await rows.allTextContents()).join('\n');
    await open(page, `/ui/logs?key=${alias}`);
    await expect(rows).toHaveCount(50);
    await expect(rows.first()).toContainText(email);
    const first = await times();
    await expect(page.getByTestId('newer')).toHaveCount(0);
    await page.getByTestId('older').click();
    await expect(rows).toHaveCount(50);
    const second = await times();
    expect(second).not.toBe(first);
    await page.getByTestId('older').click();
    await expect(rows).toHaveCount(5);
    await expect(page.getByTestId('older')).toHaveCount(0);
    // Back: the same pages again, each whole.
    await page.getByTestId('newer').click();
    await expect(rows).toHaveCount(50);
    expect(await times()).toBe(second);
    await page.getByTestId('newer').click();
    await expect(rows).toHaveCount(50);
    expect(await times()).toBe(first);
    await expect(page.getByTestId('newer')).toHaveCount(0);
  });
});
