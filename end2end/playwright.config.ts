import { defineConfig } from '@playwright/test';

// Runs against an already running Tollgate (or the console preview):
//   TOLLGATE_URL=http://127.0.0.1:4000 TOLLGATE_MASTER_KEY=sk-... \
//   EXPECTED_MODELS=gpt-4o,claude-3-5-sonnet npx playwright test
// Uses Debian's chromium; Playwright never downloads a browser here
// (install with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci).
if (!process.env.TOLLGATE_URL) {
  throw new Error('set TOLLGATE_URL to the base URL of a running Tollgate, e.g. http://127.0.0.1:4000');
}

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: 'list',
  use: {
    baseURL: process.env.TOLLGATE_URL,
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
});
