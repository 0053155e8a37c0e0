// Drives the demo chat page in headless Chromium: two users in two pages create and join a
// room, exchange room and direct messages, see each other's presence and errors; one loses
// its connection and resumes without duplicates, the other reloads and gets its history back.
//
// Run by broker/browser_e2e_test.go. Environment: ROOMQ_URL (the broker's http://host:port/,
// required), ROOMQ_CHROMIUM (default /usr/bin/chromium), ROOMQ_ARTIFACTS (screenshots; default
// ./artifacts). Exits 0 when every check passes, 1 with the reason otherwise.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.ROOMQ_URL;
const executablePath = process.env.ROOMQ_CHROMIUM || '/usr/bin/chromium';
const artifacts = process.env.ROOMQ_ARTIFACTS || join(import.meta.dirname, 'artifacts');
const T = 10_000; // deadline of every wait, in ms

if (!base) {
  console.error('ROOMQ_URL is not set');
  process.exit(2);
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const step = (what) => console.log(`--- ${what}`);

// messages returns [id, author, text] of the messages shown for a room.
const messages = (page, room) => page.$$eval(
  `#messages ol[data-room="${room}"] li.msg`,
  (lis) => lis.map((li) => [Number(li.dataset.id), li.querySelector('.author').textContent, li.querySelector('.text').textContent]),
);

const waitText = (page, selector, text) => page.waitForFunction(
  ([sel, t]) => [...document.querySelectorAll(sel)].some((el) => el.textContent.includes(t)),
  [selector, text], { timeout: T },
);

const waitStatus = (page, connects) => page.waitForFunction(
  (n) => {
    const s = document.getElementById('status');
    return s.textContent === 'online' && Number(s.dataset.connects) >= n;
  },
  connects, { timeout: T },
);

async function login(page, user) {
  await page.goto(base);
  await page.fill('#login-user', user);
  await page.fill('#login-password', 'any');
  await page.click('#login button');
  await waitStatus(page, 1);
}

async function say(page, body) {
  await page.fill('#send-text', body);
  await page.press('#send-text', 'Enter');
}

async function direct(page, to, body) {
  await page.fill('#dm-to', to);
  await page.fill('#dm-text', body);
  await page.press('#dm-text', 'Enter');
}

// Playwright starts Chromium with a new empty profile of its own (--user-data-dir).
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const pages = {};
const pageErrors = [];
let failed = null;
try {
  for (const user of ['alice', 'bob']) {
    const context = await browser.newContext({ viewport: { width: 1200, height: 720 } });
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${user}: ${err.message}`));
    page.on('console', (msg) => { if (msg.type() === 'error') console.log(`${user} console: ${msg.text()}`); });
    pages[user] = page;
  }
  const { alice, bob } = pages;

  step('both log in and see each other online (presence/+)');
  await login(alice, 'alice');
  await login(bob, 'bob');
  await alice.waitForSelector('#online li[data-user="bob"]', { timeout: T });
  await bob.waitForSelector('#online li[data-user="alice"]', { timeout: T });

  step('alice creates the room lab; creating it again shows the RPC error');
  await alice.fill('#room-name', 'lab');
  await alice.click('#room-create');
  await alice.waitForSelector('#rooms li.current[data-room="lab"]', { timeout: T });
  await alice.waitForSelector('#members li[data-user="alice"]', { timeout: T });
  await alice.fill('#room-name', 'lab');
  await alice.click('#room-create');
  await waitText(alice, '#errors p', 'roomExists');

  step('bob lists the rooms and joins lab from the list; alice sees him in the room (userJoined)');
  await bob.waitForSelector('#all-rooms li[data-room="general"]', { timeout: T });
  await bob.click('#rooms-refresh');
  await bob.click('#all-rooms li[data-room="lab"]', { timeout: T });
  await bob.waitForSelector('#rooms li.current[data-room="lab"]', { timeout: T });
  await alice.waitForSelector('#members li[data-user="bob"]', { timeout: T });
  await bob.waitForSelector('#members li[data-user="alice"]', { timeout: T });

  step('joining a room that does not exist shows the SUBACK refusal');
  await bob.fill('#room-name', 'nowhere');
  await bob.press('#room-name', 'Enter');
  await waitText(bob, '#errors p', 'join nowhere');
  await bob.waitForSelector('#rooms li[data-room="nowhere"]', { state: 'detached', timeout: T });
  await bob.click('#rooms li[data-room="lab"] span');

  step('room messages both ways');
  await say(alice, 'hello bob');
  await waitText(bob, '#messages ol[data-room="lab"] li.msg', 'hello bob');
  await say(bob, 'hi alice');
  await waitText(alice, '#messages ol[data-room="lab"] li.msg', 'hi alice');
  await waitText(bob, '#messages ol[data-room="lab"] li.msg', 'hi alice'); // its own copy too
  check(JSON.stringify(await messages(bob, 'lab')) === JSON.stringify([[1, 'alice', 'hello bob'], [2, 'bob', 'hi alice']]),
    `bob's lab shows ids 1 and 2 in order: ${JSON.stringify(await messages(bob, 'lab'))}`);

  step('direct messages both ways; to an offline user shows an error');
  await direct(alice, 'bob', 'psst');
  await waitText(bob, '#direct li.in', 'psst');
  await waitText(alice, '#direct li.out', 'psst');
  check((await bob.textContent('#direct li.in .author')) === 'alice', 'the direct message shows its author');
  await direct(bob, 'alice', 'psst back');
  await waitText(alice, '#direct li.in', 'psst back');
  await direct(alice, 'nobody', 'hello?');
  await waitText(alice, '#errors p', 'nobody is not online');

  step('alice loses her connection, bob posts, alice resumes without duplicates');
  await alice.evaluate(() => window.roomq.client.stream.destroy());
  await say(bob, 'while you were away');
  await waitStatus(alice, 2);
  await waitText(alice, '#messages ol[data-room="lab"] li.msg', 'while you were away');
  await say(bob, 'welcome back');
  await waitText(alice, '#messages ol[data-room="lab"] li.msg', 'welcome back');
  const aliceIds = (await messages(alice, 'lab')).map((m) => m[0]);
  check(JSON.stringify(aliceIds) === '[1,2,3,4]', `alice's lab ids after resume: ${aliceIds}`);

  step('bob reloads the page and gets his rooms and history back');
  await waitText(bob, '#messages ol[data-room="lab"] li.msg', 'welcome back'); // his own copy
  const before = await messages(bob, 'lab');
  await bob.reload();
  await waitStatus(bob, 1);
  await bob.waitForSelector('#rooms li.current[data-room="lab"]', { timeout: T });
  await bob.waitForFunction((n) => document.querySelectorAll('#messages ol[data-room="lab"] li.msg').length >= n,
    before.length, { timeout: T });
  const after = await messages(bob, 'lab');
  check(JSON.stringify(after) === JSON.stringify(before), `history after reload ${JSON.stringify(after)}, want ${JSON.stringify(before)}`);
  await say(bob, 'back again');
  await waitText(alice, '#messages ol[data-room="lab"] li.msg', 'back again');
  await alice.waitForSelector('#online li[data-user="bob"]', { timeout: T });

  check(pageErrors.length === 0, `no uncaught errors in the pages: ${pageErrors.join('; ')}`);
} catch (err) {
  failed = err;
}

try {
  mkdirSync(artifacts, { recursive: true });
  for (const [user, page] of Object.entries(pages)) {
    const file = join(artifacts, `chat-${user}.png`);
    await page.screenshot({ path: file });
    console.log(`screenshot: ${file}`);
  }
} catch (err) {
  console.log(`screenshot: ${err.message}`);
}
await browser.close();

if (failed) {
  console.error(`FAIL: ${failed.message}`);
  process.exit(1);
}
console.log('PASS');
