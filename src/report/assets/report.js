// The qforge report page: everything is drawn from the JSON embedded in
// #qf-data (the same document `qforge report --json` writes). Charts are
// uPlot; the heatmaps are plain canvases. window.qfReport lists every chart
// with what it actually drew, so a browser test can compare it with the JSON.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("qf-data").textContent);
  const registry = { charts: [], ready: false };
  window.qfReport = registry;
  const palette = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  const color = (k) => palette[k % palette.length];
  const models = data.models;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }
  // 4 significant digits; null (an exact reconstruction, or not measured) as a dash.
  function fmt(v) {
    if (v === null || v === undefined) return "\u2013";
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1e5 || a < 1e-3 ? v.toExponential(3) : Number(v.toPrecision(4)).toString();
  }
  function piece(id) {
    const p = data.pieces[String(id)];
    return p === undefined ? "#" + id : p;
  }
  // A token as text a reader can see: newlines and quotes escaped, spaces as U+2423.
  function visible(text) {
    return JSON.stringify(text).slice(1, -1).replaceAll(" ", "\u2423");
  }

  // --- sortable tables -------------------------------------------------------
  // Each cell carries its sort key in data-v (numbers compare as numbers).
  function table(headers, rows) {
    const t = el("table");
    const tr = el("tr");
    headers.forEach((h, i) => {
      const th = el("th", { class: h.text ? "text" : "", scope: "col", text: h.label });
      th.addEventListener("click", () => sortBy(t, i, th));
      tr.append(th);
    });
    t.append(el("thead", {}, tr));
    const body = el("tbody");
    for (const r of rows) {
      const row = el("tr");
      r.forEach((c, i) => {
        const td = el("td", { class: headers[i].text ? "text" : "" });
        if (c instanceof Node) td.append(c);
        else td.textContent = headers[i].text ? c : fmt(c);
        const key = c instanceof Node ? c.dataset.v : c;
        td.dataset.v = key === null || key === undefined ? "" : String(key);
        row.append(td);
      });
      body.append(row);
    }
    t.append(body);
    return t;
  }
  function sortBy(t, col, th) {
    const asc = th.getAttribute("aria-sort") !== "ascending";
    for (const h of t.querySelectorAll("th")) h.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const body = t.tBodies[0];
    const rows = Array.from(body.rows);
    const key = (r) => r.cells[col].dataset.v;
    const numeric = rows.every((r) => key(r) === "" || !isNaN(Number(key(r))));
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");  // blanks last
      const d = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return asc ? d : -d;
    });
    for (const r of rows) body.append(r);
  }

  // --- charts ----------------------------------------------------------------
  // Bars of series k of n side by side around each x (uPlot has no grouped bars).
  function groupedBars(k, n, widthFraction) {
    return (u, si, i0, i1) => {
      const fill = new Path2D();
      const xs = u.data[0], ys = u.data[si];
      const step = xs.length > 1 ? Math.abs(u.valToPos(xs[1], "x", true) - u.valToPos(xs[0], "x", true))
                                 : u.bbox.width / 2;
      const w = (step * widthFraction) / n;
      const y0 = u.valToPos(Math.max(u.scales.y.min, Math.min(0, u.scales.y.max)), "y", true);
      for (let i = i0; i <= i1; i++) {
        if (ys[i] === null || ys[i] === undefined) continue;
        const x = u.valToPos(xs[i], "x", true) - (step * widthFraction) / 2 + k * w;
        const y = u.valToPos(ys[i], "y", true);
        fill.rect(x, Math.min(y, y0), Math.max(w - 1, 1), Math.abs(y - y0));
      }
      return { stroke: fill, fill };
    };
  }
  function register(id, kind, u, extra) {
    registry.charts.push(Object.assign({ id, kind, points: u.data[0].length, series: u.series.length - 1,
                                         plot: u }, extra || {}));
  }
  function barChart(target, id, title, xs, seriesList, opts) {
    const n = seriesList.length;
    const u = new uPlot({
      title, width: opts.width || 440, height: opts.height || 220,
      scales: { x: { time: false, range: [xs[0] - 0.6, xs[xs.length - 1] + 0.6] },
                y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1] } },
      // One tick per layer, its label turned so block.kind names do not collide.
      axes: [{ label: opts.xlabel, values: opts.xvalues, splits: () => xs, rotate: -60, size: 90, font: "10px sans-serif" },
             { label: opts.ylabel, size: 60 }],
      legend: { show: n > 1 || !!opts.legend },
      series: [{ label: opts.xname || "x", value: opts.xvalue }].concat(seriesList.map((s, k) => ({
        label: s.label, stroke: s.color, fill: s.color, width: 0,
        paths: groupedBars(k, n, opts.barWidth || 0.85), points: { show: false },
        value: (u, v) => fmt(v) }))),
      hooks: opts.hooks || {},
    }, [xs].concat(seriesList.map((s) => s.values)), target);
    u.root.id = id;
    return u;
  }

  // --- header and summary ----------------------------------------------------
  document.getElementById("subtitle").textContent =
    `${data.model.path} (${data.model.model_type}, ${data.model.layers} blocks, hidden ${data.model.hidden}, ` +
    `${data.model.params.toLocaleString("en")} parameters) on ${data.text.tokens} tokens of ${data.text.path}`;
  document.getElementById("kld-tokens").textContent = data.settings.layer_kld_tokens;
  if (models.length) {
    const rows = models.map((m, k) => {
      const name = el("span", {}, el("i", { style: `background:${color(k)};display:inline-block;width:10px;height:10px;margin-right:4px` }), m.name);
      name.dataset.v = m.name;
      return [name, m.method, m.bits_per_weight, m.summary.kld_mean, m.summary.kld_p99, m.summary.kld_max,
              100 * m.summary.top1_agreement, m.summary.perplexity, m.summary.baseline_perplexity, m.path];
    });
    document.getElementById("summary").append(table(
      [{ label: "model", text: true }, { label: "method", text: true }, { label: "bits/w" }, { label: "KLD mean" },
       { label: "KLD p99" }, { label: "KLD max" }, { label: "top-1 %" }, { label: "PPL" }, { label: "fp32 PPL" },
       { label: "path", text: true }], rows));
    for (const m of models.filter((mm) => !mm.norms_match)) {
      document.getElementById("summary").append(el("p", { class: "note", text:
        `${m.name}: its norm weights differ from fp32's (channel scales folded in, as AWQ and SmoothQuant do), so ` +
        "its layers' SQNR/MSE compare scaled weights with unscaled ones, no per-layer KLD contribution is measured " +
        "and its activation grids (for smoothed activations) are not drawn on the fp32 histograms." }));
    }
  } else {
    document.getElementById("summary").textContent = "No quantized model compared (pass --compare).";
    for (const s of ["layers-section", "tokens-section"]) document.getElementById(s).hidden = true;
  }

  // --- per-layer errors and bit assignment -----------------------------------
  if (models.length) {
    const layers = models[0].layers;
    const xs = layers.map((_, i) => i);
    const xvalues = (u, ticks) => ticks.map((t) => (Number.isInteger(t) && layers[t] ? `${layers[t].block}.${layers[t].kind}` : ""));
    const legend = document.getElementById("layer-legend");
    models.forEach((m, k) => legend.append(el("span", {}, el("i", { style: `background:${color(k)}` }), m.name)));
    const common = { xlabel: "layer (block.kind)", xvalues, width: Math.max(440, Math.min(1180, 40 * layers.length)),
                     xname: "layer", xvalue: (u, i) => (layers[i] ? layers[i].name : "") };
    const metrics = [["sqnr_db", "SQNR (dB, higher is better)", "dB"], ["mse", "weight MSE", "MSE"],
                     ["kld", "KLD contribution (nats)", "KLD"]];
    for (const [key, title, ylabel] of metrics) {
      const id = "chart-layer-" + key;
      const u = barChart(document.getElementById("layer-charts"), id, title, xs,
        models.map((m, k) => ({ label: m.name, color: color(k), values: m.layers.map((l) => l[key]) })),
        Object.assign({ ylabel }, common));
      register(id, "layers", u, { metric: key });
    }
    const ub = barChart(document.getElementById("bits-charts"), "chart-layer-bits", "bits per weight of each layer", xs,
      models.map((m, k) => ({ label: m.name, color: color(k), values: m.layers.map((l) => l.bits_per_weight) })),
      Object.assign({ ylabel: "bits/w" }, common));
    register("chart-layer-bits", "layers", ub, { metric: "bits_per_weight" });

    // The assignment as a block x kind grid per model: each cell its scheme.
    const kinds = [...new Set(layers.map((l) => l.kind))];
    const blocks = [...new Set(layers.map((l) => l.block))];
    // 2 bits red through 3 orange, 4 yellow-green, to 8 blue; float grey.
    const bitColor = (b) => (b === null ? "#eee" : `hsl(${Math.max(0, Math.min(6, b - 2)) * 38}, 75%, 78%)`);
    const grid = document.getElementById("bits-grid");
    models.forEach((m) => {
      const byKey = new Map(m.layers.map((l) => [`${l.block}/${l.kind}`, l]));
      const rows = blocks.map((b) => {
        const cells = kinds.map((kd) => {
          const l = byKey.get(`${b}/${kd}`);
          const s = el("span", { class: "bitcell", title: l && l.scheme ? l.scheme : "float",
                                 style: `background:${bitColor(l ? l.bits : null)}`, text: l && l.bits !== null ? `${l.bits}` : "f" });
          s.dataset.v = l && l.bits !== null ? l.bits : "";
          return s;
        });
        return [b].concat(cells);
      });
      grid.append(el("h3", { text: `${m.name}: bits per code (hover a cell for its scheme)` }),
                  table([{ label: "block" }].concat(kinds.map((kd) => ({ label: kd, text: true }))), rows));
    });

    // Every (model, layer) in one sortable, filterable table.
    const rows = [];
    models.forEach((m) => m.layers.forEach((l, i) => rows.push(
      [m.name, i, l.name, l.block, l.kind, l.site, l.scheme === null ? "float" : l.scheme, l.bits, l.bits_per_weight,
       l.sqnr_db, l.mse, l.kld])));
    const t = table([{ label: "model", text: true }, { label: "#" }, { label: "layer", text: true }, { label: "block" },
                     { label: "kind", text: true }, { label: "site", text: true }, { label: "scheme", text: true },
                     { label: "bits" }, { label: "bits/w" }, { label: "SQNR dB" }, { label: "MSE" }, { label: "KLD" }], rows);
    t.id = "layers-table";
    document.getElementById("layer-table").append(t);
    const search = document.getElementById("layer-search");
    search.addEventListener("input", () => {
      const q = search.value.trim().toLowerCase();
      for (const r of t.tBodies[0].rows) r.hidden = q !== "" && !r.textContent.toLowerCase().includes(q);
    });
  }

  // --- text colored by KLD, with hover ---------------------------------------
  const tip = document.getElementById("tip");
  if (models.length) {
    const select = document.getElementById("token-model");
    models.forEach((m, k) => select.append(el("option", { value: String(k), text: m.name })));
    const box = document.getElementById("tokens");
    const spans = [];
    box.append(el("span", { class: "bos", text: piece(data.tokens[0]) || "<s>" }));
    for (let t = 0; t + 1 < data.tokens.length; t++) {
      const s = el("span", { "data-i": String(t), text: piece(data.tokens[t + 1]) });
      spans.push(s);
      box.append(s);
    }
    const paint = () => {
      const m = models[Number(select.value)];
      // Scale by the model's p99 so one extreme token does not wash out the rest.
      const scale = Math.max(m.summary.kld_p99 || 0, 1e-9);
      spans.forEach((s, t) => {
        const a = Math.min(1, Math.sqrt(m.kld[t] / scale));
        s.style.background = `rgba(214, 39, 40, ${a.toFixed(3)})`;
      });
    };
    select.addEventListener("change", paint);
    paint();
    const topTable = (title, ids, probs, target) => {
      const rows = ids.map((id, j) => [visible(piece(id)) + (id === target ? " \u2713" : ""), 100 * probs[j]]);
      return el("div", {}, el("b", { text: title }),
                table([{ label: "token", text: true }, { label: "p %" }], rows));
    };
    box.addEventListener("mouseover", (ev) => {
      const s = ev.target.closest("span[data-i]");
      if (!s) return;
      const t = Number(s.dataset.i);
      const k = Number(select.value);
      const m = models[k];
      const target = data.tokens[t + 1];
      tip.replaceChildren(
        el("div", { class: "kld", text: `KLD ${fmt(m.kld[t])} nats (${m.name} vs fp32), token "${visible(piece(target))}"` }),
        el("div", { style: "display:flex;gap:12px" },
           topTable("fp32", data.baseline.top_ids[t], data.baseline.top_probs[t], target),
           topTable(m.name, m.top_ids[t], m.top_probs[t], target)));
      const r = s.getBoundingClientRect();
      tip.hidden = false;
      tip.style.left = Math.min(r.left, window.innerWidth - 540) + "px";
      tip.style.top = (r.bottom + 6 + 260 > window.innerHeight ? Math.max(0, r.top - 260) : r.bottom + 6) + "px";
    });
    box.addEventListener("mouseout", (ev) => {
      if (ev.target.closest("span[data-i]")) tip.hidden = true;
    });

    const xs = data.tokens.slice(1).map((_, i) => i);
    const u = new uPlot({
      title: "KLD per token (nats)", width: 1100, height: 200,
      scales: { x: { time: false } },
      axes: [{ label: "token" }, { label: "KLD", size: 60 }],
      series: [{ label: "token", value: (u, i) => (i === null ? "" : `${i} "${visible(piece(data.tokens[i + 1]))}"`) }]
        .concat(models.map((m, k) => ({ label: m.name, stroke: color(k), width: 1, points: { show: false },
                                         value: (u, v) => fmt(v) }))),
    }, [xs].concat(models.map((m) => m.kld)), document.getElementById("kld-chart"));
    u.root.id = "chart-token-kld";
    register("chart-token-kld", "tokens", u);
  }

  // --- histograms with quantization grids ------------------------------------
  // Bars of the counts, and per model a vertical line at each grid level.
  function histogram(target, id, title, hist, grids, kind, extra) {
    const n = hist.counts.length;
    const width = hist.width || 1;
    const xs = hist.counts.map((_, i) => hist.lo + (i + 0.5) * width);
    let lo = hist.lo, hi = hist.lo + n * width;
    for (const g of grids) for (const v of g || []) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const pad = (hi - lo) * 0.02 || 1;
    const entry = { lines: 0 };
    const u = new uPlot({
      title, width: 340, height: 170,
      legend: { show: false },
      scales: { x: { time: false, range: [lo - pad, hi + pad] }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.05)] } },
      axes: [{ size: 30, values: (u, ticks) => ticks.map((t) => fmt(t)) }, { size: 50, values: (u, ticks) => ticks.map((t) => fmt(t)) }],
      series: [{}, { stroke: "#7f8c8d", fill: "#95a5a6", width: 0, paths: groupedBars(0, 1, 1.0), points: { show: false } }],
      hooks: { draw: [(u) => {
        const ctx = u.ctx;
        let drawn = 0;
        ctx.save();
        ctx.lineWidth = 1;
        grids.forEach((g, k) => {
          if (!g) return;
          ctx.strokeStyle = color(k);
          ctx.globalAlpha = 0.7;
          ctx.setLineDash(k % 2 ? [3, 3] : []);
          for (const v of g) {
            const x = Math.round(u.valToPos(v, "x", true)) + 0.5;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            drawn++;
          }
        });
        ctx.restore();
        entry.lines = drawn;
      }] },
    }, [xs, hist.counts], target);
    u.root.id = id;
    register(id, kind, u, extra);
    // The line count comes from the draw hook; keep the registry entry live.
    Object.defineProperty(registry.charts[registry.charts.length - 1], "lines", { get: () => entry.lines, enumerable: true });
    return u;
  }
  for (const id of ["weight-legend", "act-legend"]) {
    const lg = document.getElementById(id);
    models.forEach((m, k) => lg.append(el("span", {}, el("i", { style: `background:${color(k)}` }), `${m.name} grid`)));
  }
  const weightBox = document.getElementById("weight-hists");
  data.weights.forEach((w, i) => {
    const card = el("div", { class: "card", "data-name": w.name });
    const holder = el("div");
    card.append(el("div", { class: "title", text: `${w.name} [${w.shape.join(", ")}]` }), holder,
                el("div", { class: "stats", text: `mean ${fmt(w.stats.mean)}, std ${fmt(w.stats.std)}, kurtosis ${fmt(w.stats.kurtosis)}, ${w.stats.outliers_6sd} beyond 6 sigma; grid: ` +
                  (models.map((m, k) => (w.grids[k] ? `${m.name} ${w.grids[k].length} levels` : `${m.name} float`)).join(", ") || "none") }));
    weightBox.append(card);
    histogram(holder, `hist-weight-${i}`, "", w.hist, w.grids, "weight-hist", { tensor: w.name });
  });
  const search = document.getElementById("tensor-search");
  const count = document.getElementById("tensor-count");
  const filter = () => {
    const q = search.value.trim().toLowerCase();
    let shown = 0;
    for (const c of weightBox.children) {
      c.hidden = q !== "" && !c.dataset.name.toLowerCase().includes(q);
      shown += c.hidden ? 0 : 1;
    }
    count.textContent = `${shown} of ${data.weights.length} tensors`;
  };
  search.addEventListener("input", filter);
  filter();

  const actBox = document.getElementById("act-hists");
  data.activations.forEach((a, i) => {
    const card = el("div", { class: "card", "data-name": `block ${a.block} ${a.site}` });
    const holder = el("div");
    card.append(el("div", { class: "title", text: `block ${a.block} ${a.site} (${a.channels} channels)` }), holder,
                el("div", { class: "stats", text: `absmax ${fmt(a.absmax)}, kurtosis ${fmt(a.kurtosis)}, max/median channel ${fmt(a.max_median_ratio)}, ${a.outlier_channels.length} outlier channels` }));
    actBox.append(card);
    histogram(holder, `hist-act-${i}`, "", a.hist, a.grids, "activation-hist", { block: a.block, site: a.site });
  });

  // --- outlier heatmaps: one per site, blocks x channels ---------------------
  const heat = document.getElementById("heatmaps");
  const sites = [...new Set(data.activations.map((a) => a.site))];
  const median = (v) => {
    const s = [...v].sort((x, y) => x - y);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  sites.forEach((site) => {
    const rows = data.activations.filter((a) => a.site === site);
    const channels = Math.max(...rows.map((a) => a.channel_absmax.length));
    const cw = Math.max(3, Math.min(12, Math.floor(1100 / channels))), ch = 16;
    const canvas = el("canvas", { id: `heatmap-${site}`, width: String(channels * cw), height: String(rows.length * ch) });
    const ratios = rows.map((a) => {
      const med = median(a.channel_absmax) || 1;
      return a.channel_absmax.map((v) => v / med);
    });
    const top = Math.max(2, ...ratios.flat());
    const ctx = canvas.getContext("2d");
    let cells = 0;
    ratios.forEach((r, y) => r.forEach((v, x) => {
      const t = Math.max(0, Math.min(1, Math.log(Math.max(v, 1e-6)) / Math.log(top)));  // ratio 1 -> 0, max -> 1
      ctx.fillStyle = v < 1 ? `hsl(210, 60%, ${95 - 25 * Math.min(1, 1 - v)}%)` : `hsl(${50 - 50 * t}, 90%, ${90 - 45 * t}%)`;
      ctx.fillRect(x * cw, y * ch, cw, ch);
      cells++;
    }));
    canvas.addEventListener("mousemove", (ev) => {
      const b = canvas.getBoundingClientRect();
      const x = Math.floor((ev.clientX - b.left) / cw), y = Math.floor((ev.clientY - b.top) / ch);
      const a = rows[y];
      if (!a || x >= a.channel_absmax.length) { tip.hidden = true; return; }
      tip.textContent = `block ${a.block} ${site}, channel ${x}: max |x| ${fmt(a.channel_absmax[x])} = ${fmt(ratios[y][x])} x median` +
        (a.outlier_channels.includes(x) ? " (beyond 6 sigma)" : "");
      tip.hidden = false;
      tip.style.left = ev.clientX + 12 + "px";
      tip.style.top = ev.clientY + 12 + "px";
    });
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    const list = rows.map((a) => `block ${a.block}: ${a.outlier_channels.length ? a.outlier_channels.slice(0, 12).join(", ") + (a.outlier_channels.length > 12 ? ", ..." : "") : "none"}`);
    heat.append(el("div", { class: "heatmap" }, el("h3", { text: `${site}: ${rows.length} blocks x ${channels} channels (max ratio ${fmt(top)})` }),
                   canvas, el("div", { class: "note", text: "outlier channels: " + list.join("; ") })));
    registry.charts.push({ id: `heatmap-${site}`, kind: "heatmap", site, points: cells, series: rows.length });
  });

  registry.ready = true;
})();
