import { test, expect } from '@playwright/test';

// Where to save screenshots (optional).
const screenshotDir = process.env.SCREENSHOT_DIR;

test.describe('sign-in', () => {
  test('through Okta: the provider login form, back to the page asked for, then sign out', async ({ page }) => {
    await page.goto('/ui/models?q=gpt');
    await expect(page).toHaveURL(/\/ui\/login\?next=/);
    const sso = page.getByTestId('sso-login');
    await expect(sso).toHaveText('Sign in with Okta');
    if (screenshotDir) await page.screenshot({ path: `${screenshotDir}/login.png`, fullPage: true });
    await sso.click();

    // The identity provider's own login form (oidc-provider's, as Okta's would be).
    await expect(page).toHaveURL(/\/oauth2\/default\/interaction\//);
    // An admin (the provider puts logins starting with "admin" in the admin group):
    // the models page is for admins.
    await page.locator('input[name="login"]').fill('admin-erin');
    await page.locator('input[name="password"]').fill('any password');
    await page.locator('button[type="submit"]').click();

    await page.waitForURL('**/ui/models?q=gpt');
    await expect(page.locator('[data-testid="model-filter"]')).toBeVisible();

    // Signing out ends the session: the console asks to sign in again.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL('**/ui/login');
    await page.goto('/ui/models');
    await expect(page).toHaveURL(/\/ui\/login\?next=/);
  });

  test('a wrong master key is refused and the form says so', async ({ page }) => {
    await page.goto('/ui/login');
    await page.getByLabel('Password or master key').fill('sk-not-the-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByTestId('login-error')).toHaveText(
      'That email and password, or master key, were not accepted.',
    );
  });

  test('keyboard only: Tab to the password field, type the master key, Enter', async ({ page }) => {
    const masterKey = process.env.TOLLGATE_MASTER_KEY ?? '';
    await page.goto('/ui/login');
    // The password field has focus on arrival; Shift+Tab reaches the email field.
    await expect(page.getByLabel('Password or master key')).toBeFocused();
    await page.keyboard.press('Shift+Tab');
    await expect(page.getByLabel('Email')).toBeFocused();
    await page.keyboard.press('Tab');
    await page.keyboard.type(masterKey);
    await page.keyboard.press('Enter');
    await page.waitForURL('**/ui/dashboard');
  });
});
