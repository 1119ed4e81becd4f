// The dashboard in a real browser: Debian's headless Chromium driven by
// playwright-core against a running hub with data.
//
//   node dashboard.test.mjs <hub http url> <viewer token> <screenshot.png> [min sites] [serial]
//
// Asserts that every site panel draws 18 hexagons in two rings, that each
// hexagon's fill follows the documented colour rule applied to the JSON the
// page drew from, that a click opens the segment's lifecycle (serial, chart
// with every measured and predicted point; `serial`, or else the most urgent
// segment), that /site/{site} shows one
// telescope, and that the page loads nothing from anywhere but the hub and
// logs no error. Saves a screenshot. Exits 0 when every check passed.
// Chromium: /usr/bin/chromium (Debian package `chromium`), or $OBS_CHROMIUM.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

const [url, token, screenshot, minSitesArg, openSerial] = process.argv.slice(2);
if (!url || !token || !screenshot) {
  console.error("usage: node dashboard.test.mjs <hub http url> <viewer token> <screenshot.png> [min sites] [serial]");
  process.exit(2);
}
const minSites = Number(minSitesArg || 1);
const SEGMENTS = 18;
const STEP_MS = 20_000;        // any single wait
const WHOLE_MS = 120_000;      // the whole test

// The documented colour rule (cloud-hub/src/dashboard/layout.rs), applied
// here independently of the page's own code.
function expectedFill(segment) {
  const days = segment.prediction ? segment.prediction.days_to_threshold : null;
  if (days === null || days === undefined || Number.isNaN(days)) return "#9e9e9e";
  if (days <= 14) return "#d73027";
  if (days <= 60) return "#f28e2b";
  return "#1a9850";
}

function hex(rgb) {
  const m = rgb.match(/^rgb\((\d+), (\d+), (\d+)\)$/);
  if (!m) return rgb;
  return "#" + m.slice(1).map(v => Number(v).toString(16).padStart(2, "0")).join("");
}

let passed = 0;
const failures = [];
function check(ok, what) {
  if (ok) {
    passed += 1;
    console.log("ok - " + what);
  } else {
    failures.push(what);
    console.log("FAILED - " + what);
  }
}

const watchdog = setTimeout(() => {
  console.error(`the browser test did not finish within ${WHOLE_MS / 1000} s`);
  process.exit(3);
}, WHOLE_MS);

const profile = mkdtempSync(join(tmpdir(), "obs-chromium-"));
const origin = new URL(url).origin;
const started = Date.now();
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.OBS_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: STEP_MS,
    viewport: { width: 1760, height: 1000 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
  });
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  const page = context.pages()[0] || await context.newPage();
  const problems = [];
  page.on("console", msg => { if (msg.type() === "error") problems.push("console: " + msg.text()); });
  page.on("pageerror", error => problems.push("page error: " + error.message));
  page.on("request", request => {
    if (new URL(request.url()).origin !== origin) problems.push("request elsewhere: " + request.url());
  });

  // The token once in the address; the hub keeps it in a cookie and drops it.
  const response = await page.goto(`${url}/?token=${encodeURIComponent(token)}`);
  check(response && response.ok(), "the page loads with a viewer token");
  check(!page.url().includes("token="), "the token leaves the address bar: " + page.url());
  await page.waitForSelector('body[data-state="ready"]');

  // One evaluation: the data the page drew and what it drew, together.
  const { fleet, panels } = await page.evaluate(() => ({
    fleet: window.dashboardFleet,
    panels: [...document.querySelectorAll("section.site")].map(panel => ({
      site: panel.dataset.site,
      hexes: [...panel.querySelectorAll("g.segment")].map(g => {
        const polygon = g.querySelector("polygon.hex");
        const box = polygon.getBBox();
        return {
          position: Number(g.dataset.position),
          serial: g.dataset.serial,
          fill: getComputedStyle(polygon).fill,
          recoat: polygon.classList.contains("recoat"),
          cx: box.x + box.width / 2,
          cy: box.y + box.height / 2,
          sides: polygon.getAttribute("points").trim().split(/\s+/).length,
        };
      }),
    })),
  }));
  check(fleet && Array.isArray(fleet.sites), "the page exposes the fleet JSON it drew");
  check(panels.length >= minSites && panels.length === fleet.sites.length,
    `one panel per site (${panels.length} panels, ${fleet.sites.length} sites, at least ${minSites})`);
  const bands = {};
  for (const panel of panels) {
    const site = fleet.sites.find(s => s.site === panel.site);
    check(panel.hexes.length === SEGMENTS, `${panel.site}: ${panel.hexes.length} hexagons drawn, ${SEGMENTS} expected`);
    check(panel.hexes.every(h => h.sides === 6), `${panel.site}: every segment is a hexagon`);
    const positions = panel.hexes.map(h => h.position).sort((a, b) => a - b);
    check(positions.join() === Array.from({ length: SEGMENTS }, (_, i) => i + 1).join(), `${panel.site}: positions 1-18 once each`);
    // The real arrangement: 6 around the central hole, 12 around them.
    const cx = panel.hexes.reduce((a, h) => a + h.cx, 0) / panel.hexes.length;
    const cy = panel.hexes.reduce((a, h) => a + h.cy, 0) / panel.hexes.length;
    const radius = h => Math.hypot(h.cx - cx, h.cy - cy);
    const inner = panel.hexes.filter(h => h.position <= 6).map(radius);
    const outer = panel.hexes.filter(h => h.position > 6).map(radius);
    const ringsOk = Math.max(...inner) - Math.min(...inner) < 1 && Math.min(...outer) > 1.6 * Math.max(...inner);
    check(ringsOk, `${panel.site}: positions 1-6 form the inner ring, 7-18 the outer ring`);
    const top = panel.hexes.find(h => h.position === 1);
    check(Math.abs(top.cx - cx) < 1 && top.cy < cy, `${panel.site}: position 1 is at 12 o'clock`);
    let coloursOk = true, recoatOk = true;
    for (const h of panel.hexes) {
      const segment = site.segments.find(s => s.position === h.position);
      const want = expectedFill(segment);
      bands[want] = (bands[want] || 0) + 1;
      if (hex(h.fill) !== want) {
        coloursOk = false;
        console.log(`  ${panel.site} position ${h.position}: fill ${hex(h.fill)}, the rule says ${want} (days ${segment.prediction && segment.prediction.days_to_threshold})`);
      }
      if (h.recoat !== (segment.risk === "recoat")) recoatOk = false;
      if ((segment.serial || "") !== h.serial) coloursOk = false;
    }
    check(coloursOk, `${panel.site}: every fill follows the colour rule on the page's JSON`);
    check(recoatOk, `${panel.site}: recoat risk is marked exactly where the JSON says`);
  }
  console.log("  fills drawn: " + JSON.stringify(bands));

  // A click on a segment (the one asked for, else the most urgent) opens
  // its lifecycle.
  const candidates = fleet.sites.flatMap(s => s.segments.filter(g => g.serial && g.prediction).map(g => ({ site: s.site, ...g })));
  candidates.sort((a, b) => a.prediction.days_to_threshold - b.prediction.days_to_threshold);
  const target = openSerial ? candidates.find(c => c.serial === openSerial) : candidates[0];
  check(Boolean(target), "a segment with a prediction to click");
  if (target) {
    await page.click(`section.site[data-site="${target.site}"] g.segment[data-position="${target.position}"]`);
    await page.waitForSelector('aside#lifecycle[data-state="ready"]');
    const shown = await page.textContent("#lifecycle-serial");
    check(shown === target.serial, `the lifecycle of ${target.serial} opens (shows ${shown})`);
    const life = await page.evaluate(serial => fetch(`/api/segments/${encodeURIComponent(serial)}/lifecycle`).then(r => r.json()), target.serial);
    const chart = await page.evaluate(() => {
      const svg = document.querySelector("#lifecycle-chart");
      return svg && {
        predicted: svg.querySelectorAll("rect.predicted").length,
        measured: svg.querySelectorAll("circle.measured").length,
        threshold: svg.querySelectorAll("line.threshold").length,
      };
    });
    check(Boolean(chart), "the lifecycle has its chart");
    check(chart && chart.predicted === life.predicted.length && life.predicted.length > 0,
      `the chart draws every prediction (${chart && chart.predicted} of ${life.predicted.length})`);
    check(chart && chart.measured === life.measured.length,
      `the chart draws every measurement (${chart && chart.measured} of ${life.measured.length})`);
    const text = await page.textContent("aside#lifecycle");
    check(text.includes("Manufacture") && text.includes(life.record.coating_batch) && text.includes(target.site),
      "the lifecycle lists manufacture and installation");
    const rows = await page.$$eval("aside#lifecycle table", tables => {
      const t = tables.find(t => t.textContent.includes("before 650"));
      return t ? t.querySelectorAll("tr").length - 1 : 0;
    });
    check(rows === life.maintenance.length, `the lifecycle lists every maintenance event (${rows} of ${life.maintenance.length})`);
    console.log(`  lifecycle of ${target.serial}: ${life.predicted.length} predictions, ${life.measured.length} measurements, ${life.maintenance.length} maintenance events`);
  }

  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  check(true, "screenshot saved to " + screenshot);

  // One telescope on its own page.
  const one = fleet.sites[0];
  await page.goto(`${url}/site/${one.site}`);
  await page.waitForSelector('body[data-state="ready"]');
  const single = await page.evaluate(() => [...document.querySelectorAll("section.site")].map(p => [p.dataset.site, p.querySelectorAll("g.segment").length]));
  check(single.length === 1 && single[0][0] === one.site && single[0][1] === SEGMENTS, `/site/${one.site} shows that telescope alone`);

  check(problems.length === 0, "no console error, page error or request elsewhere" + (problems.length ? ": " + problems.join("; ") : ""));
} catch (error) {
  failures.push("unexpected: " + (error && error.stack || error));
  console.log("FAILED - " + (error && error.message || error));
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
console.log(`dashboard browser test: ${passed} passed, ${failures.length} failed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failures.length ? 1 : 0);
