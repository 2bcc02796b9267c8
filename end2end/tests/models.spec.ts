import { test, expect, type Page, type Locator } from '@playwright/test';

// The model groups the server under test is configured with.
const expectedModels = (process.env.EXPECTED_MODELS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const masterKey = process.env.TOLLGATE_MASTER_KEY ?? '';
// Where to save a screenshot of the models page (optional).
const screenshotPath = process.env.SCREENSHOT_PATH;

/** Opens /ui/models, signing in through /ui/login first when the server asks for it. */
async function openModels(page: Page): Promise<void> {
  await page.goto('/ui/models');
  if (new URL(page.url()).pathname === '/ui/login') {
    expect(masterKey, 'TOLLGATE_MASTER_KEY must be set: the server asks for a sign-in').not.toBe('');
    await expect(page.locator('input[name="next"]')).toHaveValue('/ui/models');
    await page.getByLabel('Password or master key').fill(masterKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL('**/ui/models');
  }
  await expect(page.locator('[data-testid="model-filter"]')).toBeVisible();
}

/** Waits until the wasm bundle has hydrated the page (set by an effect, which only runs in the browser). */
async function waitForHydration(page: Page): Promise<void> {
  await expect(page.locator('[data-hydrated="true"]')).toHaveCount(1);
}

interface GroupInfo {
  name: string;
  providers: string[];
  upstreamModels: string[];
}

async function readGroups(groups: Locator): Promise<GroupInfo[]> {
  return groups.evaluateAll((els) =>
    els.map((el) => ({
      name: el.querySelector('[data-testid="model-name"]')?.textContent?.trim() ?? '',
      providers: [...el.querySelectorAll('[data-testid="provider"]')].map((e) => e.textContent?.trim() ?? ''),
      upstreamModels: [...el.querySelectorAll('[data-testid="upstream-model"]')].map(
        (e) => e.textContent?.trim() ?? '',
      ),
    })),
  );
}

/** The console's filter rule: case-insensitive substring of the name, a provider or an upstream model. */
function matches(g: GroupInfo, query: string): boolean {
  const q = query.trim().toLowerCase();
  return [g.name, ...g.providers, ...g.upstreamModels].some((s) => s.toLowerCase().includes(q));
}

function countText(shown: number, total: number): string {
  return `${shown} of ${total} ${total === 1 ? 'model group' : 'model groups'}`;
}

test.describe('/ui/models', () => {
  test('lists the model groups, filters them as one types (on the server), shows the empty state', async ({ page }) => {
    expect(expectedModels.length, 'set EXPECTED_MODELS (comma-separated model group names)').toBeGreaterThan(0);
    const browserErrors: string[] = [];
    page.on('pageerror', (err) => browserErrors.push(err.message));

    await openModels(page);
    await expect(page.getByRole('link', { name: 'Tollgate' })).toBeVisible();

    const groups = page.locator('[data-testid="model-group"]');
    const names = page.locator('[data-testid="model-name"]');
    const filter = page.locator('[data-testid="model-filter"]');
    const count = page.locator('[data-testid="model-count"]');

    // Every configured group is listed (server-rendered).
    await expect(names.first()).toBeVisible();
    const allNames = (await names.allTextContents()).map((s) => s.trim());
    for (const name of expectedModels) {
      expect(allNames, `model group "${name}" is listed`).toContain(name);
    }
    const all = await readGroups(groups);
    const total = all.length;
    await expect(count).toHaveText(countText(total, total));
    await expect(page.locator('[data-testid="health"]').first()).toHaveText(/^(healthy|unhealthy|unknown)$/);

    await waitForHydration(page);

    // Typing narrows the list (case-insensitive) to the matching groups.
    const target = expectedModels[0];
    const query = target.toUpperCase();
    const expected = all.filter((g) => matches(g, query)).map((g) => g.name);
    expect(expected).toContain(target);
    await filter.fill(query);
    await expect(names).toHaveText(expected);
    await expect(count).toHaveText(countText(expected.length, total));
    if (expected.length < total) {
      const hidden = all.find((g) => !matches(g, query));
      await expect(groups.filter({ hasText: hidden?.name ?? '' })).toHaveCount(0);
    }
    if (screenshotPath) {
      await filter.fill('');
      await expect(names).toHaveCount(total);
      await page.screenshot({ path: screenshotPath, fullPage: true });
      await filter.fill(query);
      await expect(names).toHaveText(expected);
    }

    // Clearing the filter brings everything back.
    await filter.fill('');
    await expect(names).toHaveText(all.map((g) => g.name));
    await expect(count).toHaveText(countText(total, total));

    // Nothing matches: the empty state, and its button clears the filter.
    const nothing = 'zz-no-such-model-zz';
    await filter.fill(nothing);
    await expect(groups).toHaveCount(0);
    await expect(page.locator('[data-testid="empty-state"]')).toHaveText(
      new RegExp(`No model matches “${nothing}”\\.`),
    );
    await expect(count).toHaveText(countText(0, total));
    await page.getByRole('button', { name: 'Clear filter' }).click();
    await expect(filter).toHaveValue('');
    await expect(names).toHaveCount(total);

    // Refresh goes through the server function endpoint under /ui/api.
    const response = page.waitForResponse((r) => r.url().includes('/ui/api/list_model_groups'));
    await page.getByRole('button', { name: 'Refresh' }).click();
    expect((await response).status()).toBe(200);
    await expect(names).toHaveCount(total);

    expect(browserErrors, 'no uncaught errors in the page').toEqual([]);
  });
});

test.describe('/ui/login', () => {
  test('renders the sign-in form with the error and the next path', async ({ page }) => {
    await page.goto('/ui/login?error=invalid&next=%2Fui%2Fmodels%3Fq%3Dgpt&email=ann%40example.com');
    await expect(page.getByRole('heading', { name: /sign in/i })).toBeVisible();
    const rejected = 'That email and password, or master key, were not accepted.';
    await expect(page.getByText(rejected)).toBeVisible();
    const form = page.locator('form[method="post"][action="/ui/session"]');
    await expect(form.locator('input[type="password"][name="password"]')).toBeVisible();
    await expect(page.getByLabel('Password or master key')).toHaveAttribute('name', 'password');
    // The email typed before the error is kept.
    await expect(page.getByLabel('Email')).toHaveValue('ann@example.com');
    await expect(form.locator('input[type="hidden"][name="next"]')).toHaveValue('/ui/models?q=gpt');
    await expect(form.getByRole('button', { name: 'Sign in' })).toBeVisible();

    await page.goto('/ui/login?next=//evil.example');
    await expect(page.locator('input[name="next"]')).toHaveValue('/ui/dashboard');
    await expect(page.getByText(rejected)).toHaveCount(0);
  });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the login form and the model list are server-rendered', async ({ page }) => {
    await page.goto('/ui/login');
    await expect(page.locator('form[action="/ui/session"] input[name="password"]')).toBeVisible();
    await expect(page.locator('input[name="next"]')).toHaveValue('/ui/dashboard');

    await openModels(page);
    await expect(page.locator('[data-testid="model-group"]').first()).toBeVisible();
    await expect(page.locator('[data-hydrated]')).toHaveCount(0);
  });
});
