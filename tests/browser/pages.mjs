// Browser checks of the web UI (api/src/web) in headless Chromium, against a running stack with
// demo data (cli/tests/it/browser.rs starts `settle dev --demo 120` and runs this script).
//
// Every figure a page shows is compared, exactly, with the JSON API or the chain's RPC. One
// screenshot per page goes to $SETTLE_SCREENSHOTS (target/browser/). Exit code 0 only if every
// check passed; each check prints one line, `ok` or `FAIL`.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const need = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set; run this through cli/tests/it/browser.rs`);
    process.exit(2);
  }
  return value;
};
const UI = need('SETTLE_UI_URL');
const RPC = need('SETTLE_RPC_URL');
const KEY = {
  integrator: need('SETTLE_KEY_INTEGRATOR'),
  auditor: need('SETTLE_KEY_AUDITOR'),
  admin: need('SETTLE_KEY_ADMIN'),
  merchant: need('SETTLE_KEY_MERCHANT'),
  otherMerchant: need('SETTLE_KEY_OTHER_MERCHANT'),
};
const MERCHANT = need('SETTLE_MERCHANT_ADDRESS');
const OTHER_MERCHANT = need('SETTLE_OTHER_MERCHANT_ADDRESS');
const SHOTS = process.env.SETTLE_SCREENSHOTS ?? 'target/browser';
const DEMO = Number(need('SETTLE_DEMO_PAYMENTS'));
mkdirSync(SHOTS, { recursive: true });

let failures = 0;
let passes = 0;
const check = (what, ok, detail = '') => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail && !ok ? `: ${detail}` : ''}`);
  if (ok) passes++; else failures++;
};
const equal = (what, actual, expected) =>
  check(what, JSON.stringify(actual) === JSON.stringify(expected), `got ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`);

const api = async (key, path) => {
  const response = await fetch(UI + path, { headers: { authorization: `Bearer ${key}` } });
  if (!response.ok) throw new Error(`GET ${path} answered ${response.status}`);
  return response.json();
};
const rpc = async (method, params) => {
  const response = await fetch(RPC, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = await response.json();
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
};

// ------------------------------------------------------------ the evidence checker's primitives

// Vectors made by Foundry's cast (an independent implementation): `cast keccak`, and
// `cast wallet sign --no-hash` with anvil's first development key.
{
  const require = createRequire(import.meta.url);
  require('../../api/src/web/evidence.js');
  const e = globalThis.settleEvidence;
  const keccak = (text) => e.toHex(e.keccak256(new TextEncoder().encode(text)));
  equal('keccak256("")', keccak(''), '0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470');
  equal('keccak256("abc")', keccak('abc'), '0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45');
  equal('keccak256 of 136 bytes (one full block)', keccak('x'.repeat(136)), '0x50da8ef3747b7a7f01d08563aa11c72a2a668563fb928adc6e8d2a1ab4e36096');
  equal('keccak256 of 300 bytes', keccak('x'.repeat(300)), '0x956875d0d3af4718863b89e475911881cebd1cd08cfe3c2fcd0890d29def1e37');
  const digest = e.hexToBytes('0x6868e83de35c465d84d347493ccc23d12b3bfacb9809d30292d21fc4701224d1');
  const signature = e.hexToBytes('0x2c59b7317680cb9ea0989cffcb245d32bf48abbc23c497a079f76b1966ef65da1559e33ae7d5b6df105a5dd338e3962877c462476f78de923f68e592390a2ab31b');
  equal('secp256k1 recovery', e.recoverAddress(digest, signature), '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266');
  signature[40] ^= 1;
  check('a changed signature recovers another address', e.recoverAddress(digest, signature) !== '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266');
}

// ------------------------------------------------------------ the browser

const browser = await chromium.launch({
  executablePath: process.env.SETTLE_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});

// Every page: each form control has a label, and the first Tab lands on the skip link.
const accessible = async (page, name, fresh) => {
  const unlabelled = await page.locator('input:not([type=hidden]), select, textarea')
    .evaluateAll((nodes) => nodes.filter((n) => !n.labels || n.labels.length === 0).map((n) => n.id || n.name));
  equal(`${name}: every form control has a label`, unlabelled, []);
  if (!fresh) return;
  await page.keyboard.press('Tab');
  equal(`${name}: the first Tab reaches the skip link`, await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
};
// A screenshot of `page`, then the accessibility checks (`fresh`: nothing was focused yet).
const shot = async (page, name, fresh = true) => {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  await accessible(page, name, fresh);
};

// A fresh browser session logged in with `key`; answers its first page.
const session = async (key, options = {}) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  page.on('pageerror', (e) => check(`no script error on ${page.url()}`, false, e.message));
  await page.goto(`${UI}/ui/login`);
  await page.getByLabel('API key').fill(key);
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Log in' }).click()]);
  return { context, page };
};
const texts = (page, selector) => page.locator(selector).allTextContents();
const attrs = (page, selector, name) =>
  page.locator(selector).evaluateAll((nodes, n) => nodes.map((node) => node.getAttribute(n)), name);

try {
  // ---------------------------------------------------------- nothing without a key
  {
    const bare = await fetch(`${UI}/ui/merchant`, { redirect: 'manual' });
    equal('a page without a session redirects', bare.status, 303);
    equal('to the login form', bare.headers.get('location'), '/ui/login?next=/ui/merchant');
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${UI}/ui/ops`);
    equal('the browser lands on the login form', new URL(page.url()).pathname, '/ui/login');
    await shot(page, 'login');
    await page.getByLabel('API key').fill('settle_000000000000_000000000000000000000000000000000000000000000000');
    const [response] = await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Log in' }).click()]);
    equal('an unknown key is refused', response.status(), 401);
    equal('with a message', (await texts(page, '[role=alert]'))[0], 'That key is unknown or revoked. Check it and try again.');
    await context.close();
  }

  // ---------------------------------------------------------- merchant
  {
    const { context, page } = await session(KEY.merchant);
    equal('a merchant lands on its page', new URL(page.url()).pathname, '/ui/merchant');
    const cookie = (await context.cookies()).find((c) => c.name === 'settle_session');
    equal('the session cookie is HttpOnly, SameSite=Strict, Path=/ui, for the browser session',
      [cookie?.httpOnly, cookie?.sameSite, cookie?.path, cookie?.expires], [true, 'Strict', '/ui', -1]);
    equal('the cookie is not the API key', cookie?.value.includes(KEY.merchant.slice(7, 19)), false);
    const balances = await api(KEY.merchant, `/v1/merchants/${MERCHANT}/balances`);
    equal('merchant address', (await texts(page, '#merchant-address'))[0], MERCHANT);
    equal('indexed block', Number((await texts(page, '#indexed-block'))[0]), balances.indexed_block.block_number);
    equal('balance tokens', await attrs(page, '#balances tbody tr', 'data-token'), balances.balances.map((b) => b.token));
    equal('balances in base units', await texts(page, '#balances td.balance'), balances.balances.map((b) => b.balance));
    const payouts = await api(KEY.merchant, `/v1/merchants/${MERCHANT}/payouts`);
    check('the demo paid this merchant', payouts.payouts.length > 0);
    equal('payout ids, newest first', await attrs(page, '#payouts tr.payout', 'data-payment-id'), payouts.payouts.map((p) => p.payment_id));
    equal('payout amounts', await texts(page, '#payouts td.amount'), payouts.payouts.map((p) => p.amount));
    const sum = payouts.payouts.reduce((a, p) => a + BigInt(p.amount), 0n);
    equal('payouts add up to the balance (nothing withdrawn in the demo)', String(sum), balances.balances[0].balance);
    await shot(page, 'merchant');

    // Filters: one block only.
    const block = payouts.payouts[0].block_number;
    await page.getByLabel('From block').fill(String(block));
    await page.getByLabel('To block').fill(String(block));
    await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Filter' }).click()]);
    const filtered = await api(KEY.merchant, `/v1/merchants/${MERCHANT}/payouts?from_block=${block}&to_block=${block}`);
    equal('payouts filtered by block', await attrs(page, '#payouts tr.payout', 'data-payment-id'), filtered.payouts.map((p) => p.payment_id));

    // CSV of the same filter.
    const href = await page.locator('#csv').getAttribute('href');
    const csv = await page.request.get(UI + href);
    equal('the CSV downloads', csv.status(), 200);
    const rows = (await csv.text()).trim().split('\r\n');
    equal('CSV header', rows[0], 'payment_id,batch_id,tx_hash,block_number,log_index,token,payment_amount,share,amount');
    equal('CSV rows', rows.slice(1).map((r) => r.split(',')[0]), filtered.payouts.map((p) => p.payment_id));
    equal('CSV amounts', rows.slice(1).map((r) => r.split(',')[8]), filtered.payouts.map((p) => p.amount));

    // Another merchant's payouts: not found, as in the API.
    const other = await page.goto(`${UI}/ui/merchant?address=${OTHER_MERCHANT}`);
    equal("another merchant's page is 404", other.status(), 404);
    check('and shows none of its payouts', (await page.locator('#payouts').count()) === 0);
    await shot(page, 'merchant-other-denied');
    const otherCsv = await page.request.get(`${UI}/ui/merchant/payouts.csv?address=${OTHER_MERCHANT}`);
    equal("another merchant's CSV is 404", otherCsv.status(), 404);
    const forbidden = await page.goto(`${UI}/ui/payments`);
    equal('a merchant may not list payments (403)', forbidden.status(), 403);
    const apiForbidden = await fetch(`${UI}/v1/payments`, { headers: { authorization: `Bearer ${KEY.merchant}` } });
    equal('exactly as the API refuses it', apiForbidden.status, 403);

    // Logout ends the session on the server.
    await page.goto(`${UI}/ui/merchant`);
    await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Log out' }).click()]);
    equal('logout goes to the login form', new URL(page.url()).pathname, '/ui/login');
    const replay = await fetch(`${UI}/ui/merchant`, { redirect: 'manual', headers: { cookie: `settle_session=${cookie.value}` } });
    equal('the old session token no longer opens a page', replay.status, 303);
    await context.close();
  }

  // The other merchant sees its own payouts, none of the first's.
  {
    const { context, page } = await session(KEY.otherMerchant);
    const payouts = await api(KEY.otherMerchant, `/v1/merchants/${OTHER_MERCHANT}/payouts`);
    const shown = await attrs(page, '#payouts tr.payout', 'data-payment-id');
    equal('the other merchant sees its own payouts', shown, payouts.payouts.map((p) => p.payment_id));
    const first = await api(KEY.merchant, `/v1/merchants/${MERCHANT}/payouts`);
    check("and none of the first merchant's", !shown.some((id) => first.payouts.some((p) => p.payment_id === id)));
    equal('its own address', (await texts(page, '#merchant-address'))[0], OTHER_MERCHANT);
    await context.close();
  }

  // On a phone.
  {
    const { context, page } = await session(KEY.merchant, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check('the merchant page fits a phone without sideways scrolling', overflow <= 0, `${overflow}px too wide`);
    await shot(page, 'merchant-phone');
    await context.close();
  }

  // ---------------------------------------------------------- integrator
  {
    const { context, page } = await session(KEY.integrator);
    equal('an integrator lands on payments', new URL(page.url()).pathname, '/ui/payments');
    const listed = await api(KEY.integrator, '/v1/payments');
    equal('payment ids, newest first', await attrs(page, '#payments tr.payment', 'data-id'), listed.payments.map((p) => p.id));
    equal('payment statuses', await attrs(page, '#payments tr.payment', 'data-status'), listed.payments.map((p) => p.status));
    equal('payment amounts', await texts(page, '#payments td.amount'), listed.payments.map((p) => p.amount));
    await shot(page, 'integrator-payments');
    check('the demo fills more than one page', listed.next_cursor !== null);
    await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Older payments' }).click()]);
    const second = await api(KEY.integrator, `/v1/payments?cursor=${listed.next_cursor}`);
    equal('the next page, as the API pages', await attrs(page, '#payments tr.payment', 'data-id'), second.payments.map((p) => p.id));
    await page.goto(`${UI}/ui/payments?status=settled`);
    equal('filtered by status', await attrs(page, '#payments tr.payment', 'data-status'), Array(listed.payments.length).fill('settled'));
    await page.goto(`${UI}/ui/payments`);

    const target = listed.payments[3];
    await page.getByLabel('Find by id, on-chain payment id or idempotency key').fill(target.idempotency_key);
    await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Show' }).click()]);
    equal('search by idempotency key finds exactly that payment', await attrs(page, '#payments tr.payment', 'data-id'), [target.id]);
    await page.goto(`${UI}/ui/payments?q=${target.payment_id}`);
    equal('search by on-chain payment id', await attrs(page, '#payments tr.payment', 'data-id'), [target.id]);

    await page.goto(`${UI}/ui/payments/${target.id}`);
    equal('payment status', (await texts(page, '#status'))[0], target.status);
    equal('payment amount', (await texts(page, '#amount'))[0], target.amount);
    equal('transaction', (await texts(page, '#tx-hash'))[0], target.batch.tx_hash);
    equal('timeline steps', await attrs(page, '#timeline li', 'data-step'),
      ['Accepted', 'Batched', 'Signed', 'Submitted', 'Mined', 'Confirmed', 'Indexed']);
    equal('every step is done for a settled payment', await texts(page, '#timeline li .state'), Array(7).fill('done'));
    const times = await texts(page, '#timeline li time');
    check('accepted, signed, submitted, mined and confirmed carry times', times.length >= 5, JSON.stringify(times));
    const block = await rpc('eth_getBlockByNumber', ['0x' + target.batch.block_number.toString(16), false]);
    const mined = new Date(Number(BigInt(block.timestamp)) * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
    equal('mined at the block time the chain reports', (await texts(page, '#timeline li[data-step=Mined] time'))[0], mined);
    await shot(page, 'integrator-payment');
    const refused = await page.goto(`${UI}/ui/reconciliation`);
    equal('an integrator may not open reconciliation (403)', refused.status(), 403);
    await context.close();
  }

  // ---------------------------------------------------------- auditor
  {
    const { context, page } = await session(KEY.auditor);
    equal('an auditor lands on reconciliation', new URL(page.url()).pathname, '/ui/reconciliation');
    const runs = await api(KEY.auditor, '/v1/reconciliation/runs');
    equal('runs', await attrs(page, '#runs tr.run', 'data-run-id'), runs.runs.map((r) => r.id));
    equal('findings per run', await attrs(page, '#runs tr.run', 'data-findings'), runs.runs.map((r) => String(r.finding_count)));
    check('the demo reconciled clean', runs.runs.length > 0 && runs.runs[0].finding_count === 0);
    await shot(page, 'auditor-reconciliation');

    // An auditor may look at any merchant.
    await page.goto(`${UI}/ui/merchant?address=${OTHER_MERCHANT}`);
    const otherPayouts = await api(KEY.auditor, `/v1/merchants/${OTHER_MERCHANT}/payouts`);
    equal("an auditor sees a merchant's payouts", await attrs(page, '#payouts tr.payout', 'data-payment-id'), otherPayouts.payouts.map((p) => p.payment_id));

    const paymentId = otherPayouts.payouts[0].payment_id;
    const evidence = await api(KEY.auditor, `/v1/payments/${paymentId}/evidence`);
    await page.goto(`${UI}/ui/evidence/${paymentId}`);
    await page.waitForSelector('#summary[data-runs="1"]', { timeout: 60000 });
    const checks = ['chain', 'receipt', 'log', 'payment', 'digest', 'signer', 'authorised'];
    equal('the checks run against the chain', await attrs(page, '#checks-0 li', 'data-check'), checks);
    equal('every check passed for a real payment', await attrs(page, '#checks-0 li', 'data-result'), Array(checks.length).fill('passed'));
    equal('each says so in words', await texts(page, '#checks-0 li .verdict'), Array(checks.length).fill('PASSED'));
    equal('summary', (await texts(page, '#summary'))[0], `All ${checks.length * evidence.settlements.length} checks passed against ${RPC}.`);
    await shot(page, 'auditor-evidence');

    // Tampered evidence: the claims in the page are altered (as a lying server would send them),
    // then checked again against the same node.
    const tamper = async (name, edit) => {
      const tab = await context.newPage();
      await tab.goto(`${UI}/ui/evidence/${paymentId}`);
      await tab.waitForSelector('#summary[data-runs="1"]', { timeout: 60000 });
      await tab.locator('#claims').evaluate((node, name) => {
        const claims = JSON.parse(node.dataset.evidence);
        const s = claims.settlements[0];
        if (name === 'amount') s.amount = String(BigInt(s.amount) + 1n);
        if (name === 'signer') s.signer = '0x1111111111111111111111111111111111111111';
        node.dataset.evidence = JSON.stringify(claims);
      }, name);
      await tab.getByRole('button', { name: 'Check again' }).click();
      await tab.waitForSelector('#summary[data-runs="2"]', { timeout: 60000 });
      const results = Object.fromEntries(await tab.locator('#checks-0 li').evaluateAll((nodes) => nodes.map((n) => [n.dataset.check, n.dataset.result])));
      return { tab, results };
    };
    const amount = await tamper('amount');
    equal('a tampered amount fails the payment check, and only that one',
      Object.entries(amount.results).filter(([, r]) => r === 'failed').map(([c]) => c), ['payment']);
    equal('the summary says so', (await texts(amount.tab, '#summary'))[0], `1 of 7 checks FAILED against ${RPC}: do not rely on this evidence.`);
    equal('the failed check says FAILED in words', await texts(amount.tab, '#checks-0 li[data-check=payment] .verdict'), ['FAILED']);
    await shot(amount.tab, 'auditor-evidence-tampered', false);
    await amount.tab.close();
    const signer = await tamper('signer');
    equal('a tampered signer fails the log, signer and authorisation checks',
      Object.entries(signer.results).filter(([, r]) => r === 'failed').map(([c]) => c), ['log', 'signer', 'authorised']);
    await signer.tab.close();

    // Deployment: what the chain says.
    await page.goto(`${UI}/ui/deployment`);
    const contract = evidence.settlements[0].contract;
    equal('proxy', (await texts(page, '#proxy'))[0], contract);
    const slot = await rpc('eth_getStorageAt', [contract, '0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc', 'latest']);
    equal('implementation from the ERC-1967 slot', (await texts(page, '#implementation'))[0].toLowerCase(), '0x' + slot.slice(-40));
    equal('timelock delay (the demo deploys 60 s)', (await texts(page, '#min-delay'))[0], '60');
    equal('multisig threshold (2 of 3 in the demo)', await texts(page, '.threshold'), ['2']);
    equal('multisig owners', (await texts(page, '.owners li')).length, 3);
    equal('authorised signers', await texts(page, '#signers li'), [evidence.settlements[0].signer]);
    equal('bytecode verified for proxy, implementation and multisig',
      await attrs(page, '#bytecode tr.verification', 'data-contract'), ['ERC1967Proxy', 'SplitSettlement', 'SettleMultisig']);
    equal('each against the committed build: passed', await attrs(page, '#bytecode tr.verification', 'data-verdict'), ['passed', 'passed', 'passed']);
    await shot(page, 'auditor-deployment');
    const opsRefused = await page.goto(`${UI}/ui/ops`);
    equal('an auditor may not open operations (403)', opsRefused.status(), 403);
    await context.close();
  }

  // ---------------------------------------------------------- operations (admin)
  {
    const { context, page } = await session(KEY.admin);
    equal('an admin lands on operations', new URL(page.url()).pathname, '/ui/ops');
    equal('no batch in flight once the demo settled', (await texts(page, '#in-flight'))[0], '0');
    equal('nothing queued', (await texts(page, '#queue'))[0], '0');
    equal('every demo payment settled within the hour', (await texts(page, '#settled-hour'))[0], String(DEMO));
    const head = Number(BigInt(await rpc('eth_blockNumber', [])));
    const indexed = Number((await texts(page, '#indexed'))[0]);
    const lag = Number((await texts(page, '#lag'))[0]);
    check('indexer lag is the head minus the indexed block', indexed + lag <= head && indexed <= head, `${indexed} + ${lag} vs ${head}`);
    const senders = await attrs(page, '#senders tr.sender', 'data-sender');
    equal('one sender key', senders.length, 1);
    const nonce = Number(BigInt(await rpc('eth_getTransactionCount', [senders[0], 'latest'])));
    equal("the sender's nonce as the chain has it", (await texts(page, '#senders td.nonce'))[0], String(nonce));
    const balance = BigInt(await rpc('eth_getBalance', [senders[0], 'latest'])).toString();
    equal("the sender's balance as the chain has it", (await texts(page, '#senders td.wei'))[0], balance);
    equal('the chart has a bar per minute of the last hour', await page.locator('svg.chart rect').count(), 60);
    const bars = await page.locator('svg.chart rect title').allTextContents();
    equal('its bars add up to every demo payment', bars.reduce((a, t) => a + Number(t.split(': ')[1]), 0), DEMO);
    await shot(page, 'ops');
    await context.close();
  }
} catch (e) {
  check('the browser run finished', false, e.stack ?? String(e));
} finally {
  await browser.close();
}

console.log(`${passes} passed, ${failures} failed`);
if (failures > 0) process.exit(1);
console.log('all page checks passed');
