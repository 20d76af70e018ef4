// Opens noVNC's RFB client in headless Chromium against a wss:// console URL, as oVirt's
// console page does (or opens a console page that connects by itself: cfg.app_url), and reports what the browser saw: noVNC's events, a pixel of the
// canvas, and a screenshot. Driven by tests/browser.rs; one JSON argument, one JSON line out.
//
// Chromium trusts the proxy through the test CA imported into the NSS database under
// cfg.home (no certificate checks are disabled).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const cfg = JSON.parse(process.argv[2]);
const here = path.dirname(fileURLToPath(import.meta.url));
const novnc = path.join(here, 'node_modules', '@novnc', 'novnc');

const page_html = `<!doctype html><html><head><meta charset="utf-8"><title>console</title></head>
<body style="margin:0;background:#000"><div id="screen" style="width:640px;height:400px"></div>
<script type="module">
import RFB from '/novnc/core/rfb.js';
window.result = { events: [] };
window.start = (url, password) => {
  const rfb = new RFB(document.getElementById('screen'), url,
                      { credentials: { password }, wsProtocols: ['binary'] });
  rfb.addEventListener('connect', () => window.result.events.push('connect'));
  rfb.addEventListener('disconnect', (e) => window.result.events.push('disconnect:clean=' + e.detail.clean));
  rfb.addEventListener('securityfailure', (e) => window.result.events.push('securityfailure:' + e.detail.reason));
  rfb.addEventListener('credentialsrequired', () => window.result.events.push('credentialsrequired'));
  window.rfb = rfb;
};
window.pixel = (x, y) => {
  const c = document.querySelector('#screen canvas');
  if (!c || c.width === 0) return null;
  const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
  return [d[0], d[1], d[2]];
};
</script></body></html>`;

// The console page comes from a loopback https server (as the engine serves noVNC to admins on
// their network); a page without a local address may not open sockets to local addresses.
const server = https.createServer(
  { cert: fs.readFileSync(cfg.page_cert), key: fs.readFileSync(cfg.page_key) },
  (req, res) => {
    const url = new URL(req.url, 'https://localhost');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end(page_html);
    }
    if (url.pathname.startsWith('/novnc/')) {
      const file = path.join(novnc, path.normalize(url.pathname.slice('/novnc/'.length)));
      if (file.startsWith(novnc) && fs.existsSync(file)) {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        return res.end(fs.readFileSync(file));
      }
    }
    res.writeHead(404);
    res.end('not found');
  });
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

const browser = await chromium.launch({
  executablePath: cfg.chromium || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  env: { ...process.env, HOME: cfg.home },
});
const out = { events: [], pixel: null, page_errors: [], console: [] };
try {
  const page = await browser.newPage({ viewport: { width: 640, height: 400 } });
  page.on('pageerror', (e) => out.page_errors.push(String(e)));
  page.on('console', (m) => out.console.push(m.type() + ': ' + m.text()));
  // cfg.app_url: a page that connects by itself (the demo's console URL); else our test page.
  // A navigation that fails (Chromium aborts it with ERR_NETWORK_CHANGED when podman adds a
  // veth meanwhile) counts as a page that did not load: the caller retries that once.
  const navigated = await page.goto(cfg.app_url || `https://localhost:${server.address().port}/`)
    .then(() => true, (e) => { out.console.push('goto: ' + e.message.split('\n')[0]); return false; });
  const ready = cfg.app_url ? () => typeof window.result === 'object' : () => typeof window.start === 'function';
  const loaded = navigated && await page.waitForFunction(ready, null, { timeout: 30000 }).then(() => true, () => false);
  if (!loaded) {
    out.events = ['page-not-loaded'];
    console.log(JSON.stringify(out));
    await browser.close();
    server.close();
    process.exit(0);
  }
  if (!cfg.app_url) {
    await page.evaluate(({ url, password }) => window.start(url, password), { url: cfg.url, password: cfg.password });
  }
  // Wait for the outcome: connected, or disconnected.
  await page.waitForFunction(() => window.result.events.some((e) => e === 'connect' || e.startsWith('disconnect')),
                             null, { timeout: 20000 }).catch(() => {});
  const deadline = Date.now() + (cfg.expect_connect ? 10000 : 2000);
  // Give the first framebuffer update time to arrive.
  while (Date.now() < deadline) {
    out.pixel = await page.evaluate(([x, y]) => window.pixel(x, y), cfg.at || [20, 20]);
    if (out.pixel && (out.pixel[0] + out.pixel[1] + out.pixel[2]) > 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  out.events = await page.evaluate(() => window.result.events);
  await page.screenshot({ path: cfg.screenshot });
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(out));
