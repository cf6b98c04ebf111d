// Opens a `qforge report` page in real Chromium (Debian's chromium, driven
// headless by puppeteer-core) and checks it against the report's JSON, the
// data the page is supposed to be built from:
//   - it loads with no console error, no uncaught exception and no network
//     request besides the file itself (the page must be self-contained);
//   - every chart exists and plots exactly the JSON's points: per-layer
//     SQNR / MSE / KLD / bits bars (one series per compared model, the JSON's
//     values), KLD per token, one histogram per weight matrix and activation
//     site (the JSON's counts, and as many grid lines as the JSON has levels),
//     one heatmap per site (a cell per block and channel); nothing extra;
//   - the text has one span per scored token, and hovering a token shows its
//     KLD (as in the JSON) and the top candidates of both models;
//   - the layer table sorts by SQNR, and the tensor search filters.
// Usage: node check_report.mjs REPORT.html REPORT.json SCREENSHOT.png
// Environment: QF_CHROMIUM (default /usr/bin/chromium).
// Exits 1 naming every problem; 0 when the page agrees with the JSON.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import puppeteer from "puppeteer-core";

const [htmlPath, jsonPath, shotPath] = process.argv.slice(2);
if (!htmlPath || !jsonPath || !shotPath) {
  console.error("usage: node check_report.mjs REPORT.html REPORT.json SCREENSHOT.png");
  process.exit(2);
}
const data = JSON.parse(readFileSync(jsonPath, "utf8"));
const problems = [];
const problem = (p) => problems.push(p);
const pageUrl = pathToFileURL(htmlPath).href;

const browser = await puppeteer.launch({
  executablePath: process.env.QF_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("console", (m) => { if (m.type() === "error") problem(`console error: ${m.text()}`); });
  page.on("pageerror", (e) => problem(`uncaught exception: ${e.message}`));
  await page.setRequestInterception(true);
  page.on("request", (r) => {
    if (r.url() === pageUrl || r.url().startsWith("data:")) return r.continue();
    problem(`the page requested ${r.url()} (it must be self-contained)`);
    r.abort();
  });
  await page.goto(pageUrl, { waitUntil: "load" });
  await page.waitForFunction(() => window.qfReport && window.qfReport.ready, { timeout: 20000 }).catch(() => {
    problem("the page never finished building (window.qfReport.ready stayed false)");
  });

  const charts = await page.evaluate(() => window.qfReport.charts.map((c) => ({
    id: c.id, kind: c.kind, points: c.points, series: c.series, lines: c.lines,
    // What the plot holds, read back from uPlot itself.
    data: c.plot ? c.plot.data.map((s) => Array.from(s)) : null,
    inDom: !!document.getElementById(c.id),
  })));
  const byId = new Map(charts.map((c) => [c.id, c]));
  const expected = [];
  const near = (a, b) => (a === null || b === null ? a === b : Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)));
  const expectChart = (id, points, series, values, lines) => {
    expected.push(id);
    const c = byId.get(id);
    if (!c) return problem(`chart ${id} is missing`);
    if (!c.inDom) problem(`chart ${id} is not in the page`);
    if (c.points !== points) problem(`chart ${id} has ${c.points} points, the JSON ${points}`);
    if (c.series !== series) problem(`chart ${id} has ${c.series} series, the JSON ${series}`);
    if (values && c.data) {
      values.forEach((v, k) => {
        const got = c.data[k + 1] || [];
        if (got.length !== v.length || !v.every((x, i) => near(got[i] ?? null, x ?? null)))
          problem(`chart ${id} series ${k} plots other values than the JSON`);
      });
    }
    if (lines !== undefined && c.lines !== lines) problem(`chart ${id} drew ${c.lines} grid lines, the JSON has ${lines} levels`);
  };
  const models = data.models;
  if (models.length) {
    const n = models[0].layers.length;
    for (const key of ["sqnr_db", "mse", "kld", "bits_per_weight"]) {
      const id = key === "bits_per_weight" ? "chart-layer-bits" : `chart-layer-${key}`;
      expectChart(id, n, models.length, models.map((m) => m.layers.map((l) => l[key])));
    }
    expectChart("chart-token-kld", data.text.scored, models.length, models.map((m) => m.kld));
  }
  const levels = (grids) => grids.reduce((s, g) => s + (g ? g.length : 0), 0);
  data.weights.forEach((w, i) => expectChart(`hist-weight-${i}`, w.hist.counts.length, 1, [w.hist.counts], levels(w.grids)));
  data.activations.forEach((a, i) => expectChart(`hist-act-${i}`, a.hist.counts.length, 1, [a.hist.counts], levels(a.grids)));
  for (const site of [...new Set(data.activations.map((a) => a.site))]) {
    const rows = data.activations.filter((a) => a.site === site);
    expectChart(`heatmap-${site}`, rows.reduce((s, a) => s + a.channel_absmax.length, 0), rows.length);
  }
  for (const c of charts) if (!expected.includes(c.id)) problem(`unexpected chart ${c.id}`);

  if (models.length) {
    // Text: one span per scored token; hover shows its KLD and both top lists.
    const spans = await page.$$eval("#tokens span[data-i]", (s) => s.length);
    if (spans !== data.text.scored) problem(`the text has ${spans} token spans, the JSON ${data.text.scored} scored tokens`);
    const kld = models[0].kld;
    const worst = kld.indexOf(Math.max(...kld));
    for (const t of [0, worst, Math.floor(kld.length / 2)]) {
      const sel = `#tokens span[data-i="${t}"]`;
      await page.$eval(sel, (e) => e.scrollIntoView({ block: "center" }));
      await page.hover(sel);
      const tip = await page.$eval("#tip", (e) => ({ hidden: e.hidden, text: e.textContent, rows: e.querySelectorAll("tbody tr").length }));
      if (tip.hidden) { problem(`hovering token ${t} shows no tooltip`); continue; }
      const m = /KLD ([-0-9.e+]+) nats/.exec(tip.text);
      if (!m) { problem(`the tooltip of token ${t} shows no KLD: "${tip.text.slice(0, 80)}"`); continue; }
      const shown = Number(m[1]);
      // The page shows 4 significant digits: allow half a unit of the 4th.
      const unit = kld[t] === 0 ? 0 : 10 ** (Math.floor(Math.log10(Math.abs(kld[t]))) - 3);
      if (Math.abs(shown - kld[t]) > 0.51 * unit)
        problem(`the tooltip of token ${t} says KLD ${shown}, the JSON ${kld[t]}`);
      const k = data.settings.top_k;
      const wantRows = data.baseline.top_ids[t].length + models[0].top_ids[t].length;
      if (tip.rows !== wantRows) problem(`the tooltip of token ${t} lists ${tip.rows} candidates, expected ${wantRows} (top-${k} of both)`);
      // The page shows a piece escaped, with spaces as U+2423.
      const best = JSON.stringify(data.pieces[String(data.baseline.top_ids[t][0])]).slice(1, -1).replaceAll(" ", "\u2423");
      if (!tip.text.includes(best)) problem(`the tooltip of token ${t} does not show fp32's top candidate "${best}"`);
      await page.mouse.move(0, 0);
    }

    // Sorting the layer table by SQNR, both ways.
    const sqnr = async () => page.$$eval("#layers-table tbody tr", (rows) => rows.map((r) => r.cells[9].dataset.v));
    const header = await page.$$("#layers-table th");
    await header[9].click();
    let v = (await sqnr()).filter((x) => x !== "").map(Number);
    if (!v.every((x, i) => i === 0 || v[i - 1] <= x)) problem("the layer table does not sort by SQNR ascending");
    await header[9].click();
    v = (await sqnr()).filter((x) => x !== "").map(Number);
    if (!v.every((x, i) => i === 0 || v[i - 1] >= x)) problem("the layer table does not sort by SQNR descending");
    const rowsWant = models.reduce((s, mm) => s + mm.layers.length, 0);
    if ((await sqnr()).length !== rowsWant) problem(`the layer table has ${(await sqnr()).length} rows, expected ${rowsWant}`);
  }

  // Tensor search.
  const query = "down_proj";
  await page.type("#tensor-search", query);
  const shown = await page.$$eval("#weight-hists .card", (cs) => cs.filter((c) => !c.hidden).length);
  const want = data.weights.filter((w) => w.name.toLowerCase().includes(query)).length;
  if (shown !== want) problem(`searching "${query}" shows ${shown} tensors, expected ${want}`);
  await page.$eval("#tensor-search", (e) => { e.value = ""; e.dispatchEvent(new Event("input")); });

  await page.screenshot({ path: shotPath, fullPage: true });
  console.log(`${htmlPath}: ${charts.length} charts checked against ${jsonPath} in ${await browser.version()}; screenshot ${shotPath}`);
} finally {
  await browser.close();
}
if (problems.length) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
