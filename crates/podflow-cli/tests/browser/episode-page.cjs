// Drives the episode page of `podflow serve` in headless Chromium: Debian's browser
// (/usr/bin/chromium) through Playwright's library (playwright-core, which
// scripts/setup.sh --tests installs into podflow's cache; the test sets NODE_PATH).
//
// Checks the player and its captions as the browser loads them, approves the proposal
// with the second suggested title and an edited summary, waits until the page shows the
// episode published, and keeps a screenshot of the page as a person reviews it.
//
// Input (environment): PODFLOW_URL, EPISODE_ID, SCREENSHOT (a .png path), SUMMARY (the
// edited summary), CHROMIUM (default /usr/bin/chromium), PUBLISH_TIMEOUT_MS.
// Output: one JSON line on standard output with what was seen; exit 1 on any failure.
'use strict';

const { chromium } = require('playwright-core');

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(ok, what) {
  if (!ok) throw new Error(what);
}

async function main() {
  const base = need('PODFLOW_URL').replace(/\/$/, '');
  const id = need('EPISODE_ID');
  const screenshot = need('SCREENSHOT');
  const summary = need('SUMMARY');
  const publishTimeout = Number(process.env.PUBLISH_TIMEOUT_MS || 120000);
  const seen = { consoleErrors: [] };

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // This machine's network is closed: without these Chromium keeps trying Google's hosts.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1024, height: 960 } });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') seen.consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => seen.consoleErrors.push(String(e)));

    const url = `${base}/episodes/${encodeURIComponent(id)}`;
    const response = await page.goto(url);
    check(response && response.status() === 200, `GET ${url}: ${response && response.status()}`);
    seen.statusBefore = await page.getAttribute('#status', 'data-status');
    check(seen.statusBefore === 'awaiting_approval', `status before: ${seen.statusBefore}`);

    // The player and its captions track, as markup.
    const audio = page.locator('#listen audio');
    check((await audio.count()) === 1, 'one audio element in #listen');
    const track = audio.locator('track[kind="captions"]');
    check((await track.count()) === 1, 'one captions track in the audio element');
    check((await track.getAttribute('default')) !== null, 'the captions track is the default');
    const trackSrc = await track.getAttribute('src');

    // The VTT as the page's own fetch gets it (same origin, the page's policy applies).
    seen.vtt = await page.evaluate(async (src) => {
      const r = await fetch(src);
      const text = await r.text();
      return { status: r.status, type: r.headers.get('content-type'), head: text.slice(0, 6) };
    }, trackSrc);
    check(seen.vtt.status === 200, `VTT status ${seen.vtt.status}`);
    check(seen.vtt.head === 'WEBVTT', `VTT starts with ${JSON.stringify(seen.vtt.head)}`);

    // What the browser itself made of them: the MP3's length and the track's cues.
    await page.waitForFunction(
      () => {
        const a = document.querySelector('#listen audio');
        const t = a && a.querySelector('track');
        return a && t && a.readyState >= 1 && t.readyState === 2;
      },
      null,
      { timeout: 30000 },
    );
    seen.media = await page.evaluate(() => {
      const a = document.querySelector('#listen audio');
      const tt = a.textTracks[0];
      return {
        duration: a.duration,
        trackMode: tt.mode,
        cues: tt.cues ? tt.cues.length : 0,
        firstCue: tt.cues && tt.cues.length ? tt.cues[0].text : '',
      };
    });
    check(seen.media.duration > 1, `audio duration ${seen.media.duration}`);
    check(seen.media.cues > 0, 'the captions track has cues');

    // The spoken caption, written under the player, follows the playhead.
    await page.evaluate(() => {
      const a = document.querySelector('#listen audio');
      const cue = a.textTracks[0].cues[0];
      a.currentTime = (cue.startTime + cue.endTime) / 2;
    });
    await page.waitForFunction(
      () => document.getElementById('caption').textContent.trim().length > 0,
      null,
      { timeout: 10000 },
    );
    seen.caption = (await page.textContent('#caption')).trim();

    // The decision: the second suggested title (the first when only one), edited summary.
    const radios = page.locator('#approve-form input[name="title_choice"]');
    const count = await radios.count();
    check(count >= 1, 'suggested titles as radio buttons');
    const pick = radios.nth(count >= 2 ? 1 : 0);
    await pick.check();
    seen.chosenTitle = (await pick.locator('xpath=..').innerText()).trim();
    await page.fill('#summary', summary);
    await page.screenshot({ path: screenshot });

    await Promise.all([page.waitForURL(/flash=/), page.click('#approve')]);
    seen.flash = (await page.textContent('.flash')) || '';
    check(seen.flash.includes('approved as'), `flash: ${seen.flash}`);

    // The workers publish it; the page says so once they have.
    const deadline = Date.now() + publishTimeout;
    for (;;) {
      seen.statusAfter = await page.getAttribute('#status', 'data-status');
      if (seen.statusAfter === 'done' || seen.statusAfter === 'partial') break;
      check(Date.now() < deadline, `not published within ${publishTimeout} ms: ${seen.statusAfter}`);
      await page.waitForTimeout(500);
      await page.reload();
    }
    seen.decision = ((await page.textContent('#decision')) || '').trim();
    seen.showNotes = (await page.textContent('#outputs details[open] pre')) || '';
    seen.ok = true;
  } finally {
    await browser.close();
  }
  return seen;
}

main().then(
  (seen) => {
    process.stdout.write(`${JSON.stringify(seen)}\n`);
  },
  (error) => {
    process.stderr.write(`browser test failed: ${error && error.stack ? error.stack : error}\n`);
    process.exit(1);
  },
);
