/* footfall central dashboard: fetches /api/* and draws small SVG charts.
 * No framework, no CDN. Everything that comes from data is inserted with textContent or
 * setAttribute, never as HTML (store, device and zone ids come from the devices). */
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const state = { store: null, from: null, to: null, tz: "UTC", stores: [], data: {} };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

const nf0 = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat("en", { maximumFractionDigits: 1, minimumFractionDigits: 1 });
function fmtInt(v) { return v === null || v === undefined ? "–" : nf0.format(v); }
function fmtPct(v) { return v === null || v === undefined ? "–" : nf1.format(v) + " %"; }
function fmtDur(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return nf0.format(s) + " s";
  if (s % 60 === 0 && s < 5400) return nf0.format(s / 60) + " min";
  if (s < 5400) return nf1.format(s / 60) + " min";
  return nf1.format(s / 3600) + " h";
}
function fmtMoney(v, currency) {
  if (v === null || v === undefined) return "–";
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency: currency || "EUR" }).format(v);
  } catch (e) {
    return nf1.format(v);
  }
}
function fmtTime(iso, withDate) {
  if (!iso) return "–";
  const opts = { timeZone: state.tz, hour: "2-digit", minute: "2-digit", hour12: false };
  if (withDate !== false) { opts.month = "short"; opts.day = "numeric"; }
  return new Intl.DateTimeFormat("en-GB", opts).format(new Date(iso));
}
function fmtDay(isoDate) {
  const d = new Date(isoDate + "T12:00:00Z");
  return new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", weekday: "short", day: "numeric", month: "short" }).format(d);
}

/* ---------- tooltip ---------- */
const tip = () => $("tooltip");
function showTip(evt, text) {
  const t = tip();
  t.textContent = text;
  t.hidden = false;
  const x = Math.min(evt.clientX + 14, window.innerWidth - t.offsetWidth - 8);
  t.style.left = x + "px";
  t.style.top = (evt.clientY + 14) + "px";
}
function hideTip() { tip().hidden = true; }

/* ---------- scales and axes ---------- */
function niceTicks(max, count) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = 0; v <= max + step * 0.001; v += step) ticks.push(+v.toFixed(10));
  if (ticks[ticks.length - 1] < max) ticks.push(+(ticks[ticks.length - 1] + step).toFixed(10));
  return ticks;
}

function frame(container, height, margin) {
  clear(container);
  const width = Math.max(320, container.clientWidth || 600);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  container.appendChild(root);
  const m = Object.assign({ top: 12, right: 14, bottom: 28, left: 46 }, margin || {});
  return { root, width, height, m, iw: width - m.left - m.right, ih: height - m.top - m.bottom };
}

function yAxis(f, ticks, fmt, side) {
  const g = svg("g", { class: "y-axis" });
  const top = ticks[ticks.length - 1] || 1;
  for (const t of ticks) {
    const y = f.m.top + f.ih - (t / top) * f.ih;
    if (side !== "right") g.appendChild(svg("line", { class: "grid-line", x1: f.m.left, x2: f.m.left + f.iw, y1: y, y2: y }));
    const x = side === "right" ? f.m.left + f.iw + 6 : f.m.left - 6;
    g.appendChild(svg("text", { x, y: y + 3.5, "text-anchor": side === "right" ? "start" : "end" }, fmt(t)));
  }
  f.root.appendChild(g);
  return top;
}

function empty(container, text) {
  clear(container);
  container.appendChild(el("div", { class: "empty" }, text || "No data in this range"));
}

/* ---------- bar chart ---------- */
function barChart(container, opts) {
  const values = opts.values;
  if (!values.length || values.every((v) => !v)) { empty(container); return; }
  const f = frame(container, opts.height || 240, { bottom: 30 });
  const ticks = niceTicks(Math.max(...values), 4);
  const top = yAxis(f, ticks, opts.fmtY || fmtInt);
  const band = f.iw / values.length;
  const gap = Math.min(band * 0.22, 6);
  const g = svg("g", { class: "bars" });
  values.forEach((v, i) => {
    const h = (v / top) * f.ih;
    const rect = svg("rect", {
      class: "bar" + (opts.highlight && opts.highlight(i) ? " alt" : ""),
      x: f.m.left + i * band + gap / 2, y: f.m.top + f.ih - h,
      width: Math.max(1, band - gap), height: Math.max(0, h), rx: Math.min(3, band / 6),
      "data-value": v,
    });
    rect.addEventListener("mousemove", (e) => showTip(e, opts.tooltip(i)));
    rect.addEventListener("mouseleave", hideTip);
    g.appendChild(rect);
  });
  f.root.appendChild(g);
  const every = Math.max(1, Math.ceil(values.length / Math.floor(f.iw / (opts.labelWidth || 34))));
  const xg = svg("g", { class: "x-axis" });
  xg.appendChild(svg("line", { class: "axis-line", x1: f.m.left, x2: f.m.left + f.iw, y1: f.m.top + f.ih, y2: f.m.top + f.ih }));
  opts.labels.forEach((label, i) => {
    if (i % every) return;
    xg.appendChild(svg("text", { x: f.m.left + (i + 0.5) * band, y: f.height - 10, "text-anchor": "middle" }, label));
  });
  f.root.appendChild(xg);
}

/* ---------- time line chart (optionally with bars on a second axis) ---------- */
function lineChart(container, opts) {
  const n = opts.times.length;
  if (!n || opts.series.every((s) => s.values.every((v) => v === null))) { empty(container); return; }
  const f = frame(container, opts.height || 240, { right: opts.bars ? 46 : 14, bottom: 30 });
  const t0 = opts.times[0];
  const t1 = opts.times[n - 1];
  const xOf = (t) => f.m.left + (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * f.iw);
  const maxV = Math.max(...opts.series.flatMap((s) => s.values.filter((v) => v !== null)), 0);
  const ticks = niceTicks(maxV * 1.05, 4);
  const top = yAxis(f, ticks, opts.fmtY || fmtInt);
  const yOf = (v) => f.m.top + f.ih - (v / top) * f.ih;

  if (opts.bars) {
    const bt = niceTicks(Math.max(...opts.bars.values) * 1.05, 4);
    const btop = yAxis(f, bt, fmtInt, "right");
    const band = f.iw / Math.max(1, n - 1);
    const g = svg("g", { class: "bars secondary" });
    opts.bars.values.forEach((v, i) => {
      const h = (v / btop) * f.ih;
      const w = Math.max(1, Math.min(band * 0.6, 18));
      g.appendChild(svg("rect", { class: "bar p90", x: xOf(opts.times[i]) - w / 2, y: f.m.top + f.ih - h, width: w, height: h, rx: 2, "data-value": v }));
    });
    f.root.appendChild(g);
  }
  // x axis: index labels when given, else local midnights (or hours for short spans)
  const xg = svg("g", { class: "x-axis" });
  xg.appendChild(svg("line", { class: "axis-line", x1: f.m.left, x2: f.m.left + f.iw, y1: f.m.top + f.ih, y2: f.m.top + f.ih }));
  const maxLabels = Math.max(2, Math.floor(f.iw / (opts.labelWidth || 58)));
  let xticks = [];
  if (opts.xLabel) {
    const step = Math.max(1, Math.ceil(n / maxLabels));
    for (let i = 0; i < n; i += step) xticks.push({ i, label: opts.xLabel(i) });
  } else {
    const hourOf = new Intl.DateTimeFormat("en-GB", { timeZone: state.tz, hour: "numeric", hourCycle: "h23" });
    const dayOf = new Intl.DateTimeFormat("en-GB", { timeZone: state.tz, weekday: "short", day: "numeric" });
    const multiDay = t1 - t0 > 36 * 3600e3;
    const marks = [];
    opts.times.forEach((t, i) => {
      const h = +hourOf.format(new Date(t));
      if (multiDay ? h === 0 : h % 3 === 0) marks.push({ i, label: multiDay ? dayOf.format(new Date(t)) : String(h).padStart(2, "0") + ":00" });
    });
    const step = Math.max(1, Math.ceil(marks.length / maxLabels));
    xticks = marks.filter((_, k) => k % step === 0);
    for (const m of marks) {
      const x = xOf(opts.times[m.i]);
      xg.appendChild(svg("line", { class: "grid-line", x1: x, x2: x, y1: f.m.top, y2: f.m.top + f.ih }));
    }
  }
  for (const tk of xticks) {
    xg.appendChild(svg("text", { x: xOf(opts.times[tk.i]), y: f.height - 10, "text-anchor": "middle" }, tk.label));
  }
  f.root.appendChild(xg);
  if (opts.marker !== undefined && opts.marker !== null) {
    const x = xOf(opts.marker);
    f.root.appendChild(svg("line", { class: "now-line", x1: x, x2: x, y1: f.m.top, y2: f.m.top + f.ih }));
    f.root.appendChild(svg("text", { x: x + 4, y: f.m.top + 10 }, opts.markerLabel || ""));
  }
  for (const s of opts.series) {
    let d = "";
    let points = 0;
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      d += (pen ? "L" : "M") + xOf(opts.times[i]).toFixed(1) + "," + yOf(v).toFixed(1);
      pen = true;
      points += 1;
    });
    if (s.area && d) {
      const first = s.values.findIndex((v) => v !== null);
      const last = s.values.length - 1 - [...s.values].reverse().findIndex((v) => v !== null);
      const area = d + `L${xOf(opts.times[last]).toFixed(1)},${yOf(0)}L${xOf(opts.times[first]).toFixed(1)},${yOf(0)}Z`;
      f.root.appendChild(svg("path", { class: "area", d: area, fill: s.color }));
    }
    const path = svg("path", { class: "series " + (s.cls || ""), d, stroke: s.color, "data-points": points, "data-name": s.name });
    if (s.dash) path.setAttribute("stroke-dasharray", s.dash);
    f.root.appendChild(path);
    if (s.dots) {
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        f.root.appendChild(svg("circle", { class: "dot", cx: xOf(opts.times[i]), cy: yOf(v), r: 3, fill: "#fff", stroke: s.color, "stroke-width": 1.8 }));
      });
    }
  }
  if (opts.series.length > 1 || opts.bars) {
    const lg = svg("g", { class: "legend" });
    let x = f.m.left + 4;
    if (opts.bars) {
      lg.appendChild(svg("rect", { class: "bar p90", x, y: f.m.top - 3, width: 14, height: 10, rx: 2 }));
      lg.appendChild(svg("text", { x: x + 20, y: f.m.top + 6 }, opts.bars.name));
      x += 30 + opts.bars.name.length * 7;
    }
    for (const s of opts.series) {
      lg.appendChild(svg("line", { x1: x, x2: x + 18, y1: f.m.top + 2, y2: f.m.top + 2, stroke: s.color, "stroke-width": 2.5, "stroke-dasharray": s.dash || "" }));
      const t = svg("text", { x: x + 24, y: f.m.top + 6 }, s.name);
      lg.appendChild(t);
      x += 34 + s.name.length * 7;
    }
    f.root.appendChild(lg);
  }
  // hover: nearest index
  const hover = svg("line", { class: "hover-line", y1: f.m.top, y2: f.m.top + f.ih, visibility: "hidden" });
  f.root.appendChild(hover);
  const overlay = svg("rect", { x: f.m.left, y: f.m.top, width: f.iw, height: f.ih, fill: "transparent" });
  overlay.addEventListener("mousemove", (e) => {
    const box = f.root.getBoundingClientRect();
    const px = ((e.clientX - box.left) / box.width) * f.width;
    const t = t0 + ((px - f.m.left) / f.iw) * (t1 - t0);
    let best = 0;
    for (let i = 1; i < n; i++) if (Math.abs(opts.times[i] - t) < Math.abs(opts.times[best] - t)) best = i;
    const x = xOf(opts.times[best]);
    hover.setAttribute("x1", x); hover.setAttribute("x2", x); hover.setAttribute("visibility", "visible");
    showTip(e, opts.tooltip(best));
  });
  overlay.addEventListener("mouseleave", () => { hover.setAttribute("visibility", "hidden"); hideTip(); });
  f.root.appendChild(overlay);
}

/* ---------- horizontal grouped bars (dwell) ---------- */
function hbarChart(container, rows) {
  if (!rows.length) { empty(container); return; }
  const rowH = 34;
  const f = frame(container, rows.length * rowH + 46, { left: 96, bottom: 26, top: 22 });
  const maxV = Math.max(...rows.map((r) => r.p90_s || r.median_s || 0));
  // Ticks on whole minutes once the scale passes two minutes.
  const ticks = maxV > 120 ? niceTicks(maxV / 60, 5).map((m) => m * 60) : niceTicks(maxV, 4);
  const top = ticks[ticks.length - 1];
  const xOf = (v) => f.m.left + (v / top) * f.iw;
  for (const t of ticks) {
    f.root.appendChild(svg("line", { class: "grid-line", x1: xOf(t), x2: xOf(t), y1: f.m.top, y2: f.m.top + f.ih }));
    f.root.appendChild(svg("text", { x: xOf(t), y: f.height - 8, "text-anchor": "middle" }, fmtDur(t)));
  }
  const lg = svg("g", { class: "legend" });
  lg.appendChild(svg("rect", { x: f.m.left, y: 4, width: 12, height: 10, class: "bar", rx: 2 }));
  lg.appendChild(svg("text", { x: f.m.left + 18, y: 13 }, "median"));
  lg.appendChild(svg("rect", { x: f.m.left + 80, y: 4, width: 12, height: 10, class: "bar p90", rx: 2 }));
  lg.appendChild(svg("text", { x: f.m.left + 98, y: 13 }, "p90"));
  f.root.appendChild(lg);
  const g = svg("g", { class: "bars" });
  rows.forEach((r, i) => {
    const y = f.m.top + i * rowH + 4;
    const p90 = svg("rect", { class: "bar p90", x: f.m.left, y, width: Math.max(0, xOf(r.p90_s || 0) - f.m.left), height: rowH - 10, rx: 3 });
    const med = svg("rect", { class: "bar", x: f.m.left, y: y + 5, width: Math.max(0, xOf(r.median_s || 0) - f.m.left), height: rowH - 20, rx: 2, "data-value": r.median_s });
    // A quantile in the open-ended last bin is a lower bound: "at least an hour".
    const atLeast = (flag) => (flag ? "≥ " : "");
    const text = `${r.zone_id} (${r.camera_id})\nmedian ${atLeast(r.median_at_least)}${fmtDur(r.median_s)} · p90 ${atLeast(r.p90_at_least)}${fmtDur(r.p90_s)}\n${fmtInt(r.visits)} visits`;
    for (const node of [p90, med]) {
      node.addEventListener("mousemove", (e) => showTip(e, text));
      node.addEventListener("mouseleave", hideTip);
      g.appendChild(node);
    }
    g.appendChild(svg("text", { x: f.m.left - 8, y: y + rowH / 2 - 1, "text-anchor": "end", class: "zone-label" }, r.zone_id));
  });
  f.root.appendChild(g);
}

/* ---------- tables ---------- */
function table(node, headers, rows) {
  clear(node);
  const thead = el("thead");
  const tr = el("tr");
  for (const h of headers) tr.appendChild(el("th", h.num ? { class: "num" } : {}, h.label));
  thead.appendChild(tr);
  node.appendChild(thead);
  const tbody = el("tbody");
  for (const row of rows) {
    const r = el("tr");
    row.forEach((cell, i) => {
      const td = el("td", headers[i].num ? { class: "num" } : {});
      if (cell && typeof cell === "object" && cell.pill) td.appendChild(el("span", { class: "pill " + cell.pill }, cell.text));
      else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
      r.appendChild(td);
    });
    tbody.appendChild(r);
  }
  if (!rows.length) {
    const r = el("tr");
    r.appendChild(el("td", { colspan: headers.length, class: "muted" }, "None in this range"));
    tbody.appendChild(r);
  }
  node.appendChild(tbody);
}

/* ---------- rendering each section ---------- */
function kpi(label, value, hint, cls) {
  const box = el("div", { class: "kpi " + (cls || "") });
  box.appendChild(el("div", { class: "label" }, label));
  box.appendChild(el("div", { class: "value" }, value));
  if (hint) box.appendChild(el("div", { class: "hint" }, hint));
  return box;
}

function renderKpis(d) {
  const k = $("kpis");
  clear(k);
  const ff = d.footfall, cv = d.conversion, dv = d.devices, st = d.stock, q = d.quality;
  const online = dv.devices.filter((x) => x.state === "online").length;
  const openOuts = st.stockouts.filter((s) => s.open).length;
  const issues = q.findings.filter((f) => f.severity !== "info").length;
  k.appendChild(kpi("Visitors", fmtInt(ff.visitors), `${fmtInt(ff.visitors / Math.max(1, ff.days))} per day`));
  k.appendChild(kpi("Transactions", fmtInt(cv.transactions), "from POS"));
  // Sales in hours without footfall data are left out of the rate (no visitors to divide by).
  const left = cv.transactions_without_footfall;
  k.appendChild(kpi("Conversion", fmtPct(cv.conversion_pct), left ? `${fmtInt(left)} sales in hours without counts left out` : "transactions / visitors"));
  k.appendChild(kpi("Average basket", fmtMoney(cv.avg_basket, cv.currency), cv.visitors_per_transaction ? `${nf1.format(cv.visitors_per_transaction)} visitors per sale` : ""));
  k.appendChild(kpi("Open stock-outs", fmtInt(openOuts), `${st.stockouts.length} in range`, openOuts ? "bad" : "good"));
  k.appendChild(kpi("Devices online", `${online} / ${dv.devices.length}`, "latest status", online < dv.devices.length ? "bad" : "good"));
  k.appendChild(kpi("Data issues", fmtInt(issues), issues ? "see data quality" : "none", issues ? "bad" : "good"));
  for (const node of k.querySelectorAll(".value")) node.setAttribute("data-kpi", node.previousSibling.textContent);
}

function renderFootfall(d) {
  const ff = d.footfall;
  barChart($("chart-hour"), {
    labels: ff.by_hour_of_day.map((h) => String(h.hour).padStart(2, "0")),
    values: ff.by_hour_of_day.map((h) => h.visitors_per_day),
    tooltip: (i) => `${String(i).padStart(2, "0")}:00–${String(i + 1).padStart(2, "0")}:00\n${nf1.format(ff.by_hour_of_day[i].visitors_per_day)} visitors per day`,
    labelWidth: 26,
  });
  $("day-sub").textContent = ff.lines.map((l) => `${l.line_id}: ${fmtInt(l.in)} in / ${fmtInt(l.out)} out`).join(" · ");
  barChart($("chart-day"), {
    labels: ff.by_day.map((x) => fmtDay(x.date).replace(/^\w+ /, "")),
    values: ff.by_day.map((x) => x.in),
    tooltip: (i) => `${fmtDay(ff.by_day[i].date)}\n${fmtInt(ff.by_day[i].in)} in · ${fmtInt(ff.by_day[i].out)} out`,
    labelWidth: 46,
  });
}

function renderOccupancy(d) {
  const pts = d.occupancy.points;
  lineChart($("chart-occupancy"), {
    times: pts.map((p) => Date.parse(p.t)),
    series: [{ name: "occupancy", values: pts.map((p) => p.occupancy), color: "#2f7dd1", area: true }],
    fmtY: fmtInt,
    tooltip: (i) => `${fmtTime(pts[i].t)}\n${nf1.format(pts[i].occupancy)} people`,
  });
}

function renderConversion(d) {
  const days = d.conversion.by_day;
  lineChart($("chart-conversion"), {
    times: days.map((x) => Date.parse(x.date + "T12:00:00Z")),
    series: [{ name: "conversion %", values: days.map((x) => x.conversion_pct), color: "#f08c2e", dots: true }],
    bars: { name: "transactions (right axis)", values: days.map((x) => x.transactions) },
    fmtY: (v) => v + " %",
    xLabel: (i) => fmtDay(days[i].date).replace(/^\w+ /, ""),
    tooltip: (i) => `${fmtDay(days[i].date)}\n${fmtPct(days[i].conversion_pct)} conversion\n${fmtInt(days[i].transactions)} transactions / ${fmtInt(days[i].visitors)} visitors\nbasket ${fmtMoney(days[i].avg_basket, d.conversion.currency)}`,
  });
}

function renderDwell(d) {
  hbarChart($("chart-dwell"), d.dwell.zones);
  table($("table-transitions"), [
    { label: "From" }, { label: "To" }, { label: "Moves", num: true }, { label: "Share of moves out", num: true },
  ], d.dwell.transitions.slice(0, 6).map((t) => [t.from, t.to, fmtInt(t.count), fmtPct(100 * t.share_of_from)]));
}

function renderStock(d) {
  const outs = d.stock.stockouts;
  $("stock-sub").textContent = `${outs.filter((s) => s.open).length} open · ${outs.filter((s) => !s.open).length} closed · ${d.stock.low.length} low`;
  table($("table-stock"), [
    { label: "Product (GTIN)" }, { label: "Zone" }, { label: "Since" }, { label: "Until" },
    { label: "Hours", num: true }, { label: "Lost units", num: true }, { label: "State" },
  ], outs.map((s) => [
    s.gtin, s.zone, fmtTime(s.start), s.end ? fmtTime(s.end) : "–", nf1.format(s.duration_h),
    s.lost_sales === null || s.lost_sales === undefined ? "–" : nf1.format(s.lost_sales),
    { pill: s.open ? "open" : "closed", text: s.open ? "open" : "closed" },
  ]));
  table($("table-counts"), [
    { label: "Product (GTIN)" }, { label: "Zone" }, { label: "Items", num: true }, { label: "Low at", num: true }, { label: "As of" },
  ], d.stock.counts.map((c) => {
    const low = c.threshold !== null && c.threshold !== undefined && c.count <= c.threshold;
    return [c.gtin, c.zone, { pill: c.count === 0 ? "open" : low ? "low" : "closed", text: String(c.count) }, c.threshold, fmtTime(c.as_of)];
  }));
}

function renderDevices(d) {
  table($("table-devices"), [
    { label: "Device" }, { label: "State" }, { label: "Last seen" }, { label: "Version" },
    { label: "Outbox", num: true }, { label: "Issues", num: true },
  ], d.devices.devices.map((x) => [
    x.device_id, { pill: x.state || "unknown", text: x.state || "unknown" }, fmtTime(x.last_seen),
    x.version, x.outbox_depth, x.issues,
  ]));
}

function renderQuality(d) {
  const list = $("list-quality");
  clear(list);
  const q = d.quality;
  $("quality-sub").textContent = q.ok ? "no problems" : `${q.findings.length} finding(s)`;
  if (!q.findings.length) list.appendChild(el("li", { class: "empty" }, "No data-quality problems in this range."));
  for (const f of q.findings) {
    const li = el("li", { "data-kind": f.kind });
    li.appendChild(el("span", { class: "pill " + f.severity }, f.severity));
    li.appendChild(el("span", {}, f.message));
    list.appendChild(li);
  }
}

function renderForecast(d) {
  const fc = d.forecast;
  const times = [];
  const actual = [];
  const predicted = [];
  const seen = new Map();
  for (const p of fc.actual) { seen.set(p.t, times.length); times.push(Date.parse(p.t)); actual.push(p.v); predicted.push(null); }
  for (const p of fc.forecast) {
    if (seen.has(p.t)) { predicted[seen.get(p.t)] = p.v; continue; }
    times.push(Date.parse(p.t)); actual.push(null); predicted.push(p.v);
  }
  const note = $("forecast-note");
  note.textContent = fc.note;
  note.className = "note " + (fc.beats_baseline === false ? "warn" : fc.beats_baseline ? "ok" : "");
  $("forecast-sub").textContent = fc.backtest ? `backtest MAE ${nf1.format(fc.backtest.model.mae)} vs seasonal-naive ${nf1.format(fc.backtest.baseline.mae)} visitors/h` : "";
  lineChart($("chart-forecast"), {
    height: 260,
    times,
    series: [
      { name: "actual", values: actual, color: "#2f7dd1", cls: "actual" },
      { name: "forecast", values: predicted, color: "#f08c2e", dash: "5 3", cls: "forecast" },
    ],
    marker: fc.forecast.length ? Date.parse(fc.forecast[0].t) : null,
    markerLabel: "forecast from here",
    tooltip: (i) => `${fmtTime(new Date(times[i]).toISOString())}\nactual ${actual[i] === null ? "–" : fmtInt(actual[i])}\nforecast ${predicted[i] === null ? "–" : nf1.format(predicted[i])}`,
  });
}

/* ---------- data loading ---------- */
async function getJSON(path, params) {
  const url = path + "?" + new URLSearchParams(params).toString();
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

const SECTIONS = ["footfall", "occupancy", "conversion", "dwell", "stock", "devices", "quality", "forecast"];

async function load() {
  document.body.dataset.state = "loading";
  $("error").hidden = true;
  const params = { store: state.store, from: state.from, to: state.to };
  location.hash = new URLSearchParams(params).toString();
  const info = state.stores.find((s) => s.store_id === state.store);
  state.tz = info ? info.timezone : "UTC";
  $("tz").textContent = state.tz;
  try {
    const docs = await Promise.all(SECTIONS.map((s) => getJSON("/api/" + s, params)));
    const d = {};
    SECTIONS.forEach((s, i) => { d[s] = docs[i]; });
    state.data = d;
    render();
    document.body.dataset.state = "ready";
  } catch (err) {
    $("error").textContent = "Could not load the data: " + err.message;
    $("error").hidden = false;
    document.body.dataset.state = "error";
  }
}

function render() {
  const d = state.data;
  if (!d.footfall) return;
  renderKpis(d);
  renderForecast(d);
  renderFootfall(d);
  renderOccupancy(d);
  renderConversion(d);
  renderDwell(d);
  renderStock(d);
  renderDevices(d);
  renderQuality(d);
}

async function init() {
  const info = await getJSON("/api/stores", {});
  state.stores = info.stores;
  $("db").textContent = info.db;
  const sel = $("store");
  for (const s of info.stores) sel.appendChild(el("option", { value: s.store_id }, s.store_id));
  const hash = new URLSearchParams(location.hash.slice(1));
  state.store = hash.get("store") || (info.default && info.default.store) || (info.stores[0] && info.stores[0].store_id);
  state.from = hash.get("from") || (info.default && info.default.from);
  state.to = hash.get("to") || (info.default && info.default.to);
  if (!state.store) {
    $("error").textContent = "No store has sent data yet.";
    $("error").hidden = false;
    document.body.dataset.state = "empty";
    return;
  }
  sel.value = state.store;
  $("from").value = state.from;
  $("to").value = state.to;
  $("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    state.store = sel.value;
    state.from = $("from").value;
    state.to = $("to").value;
    load();
  });
  sel.addEventListener("change", () => { state.store = sel.value; load(); });
  window.addEventListener("hashchange", () => {
    const h = new URLSearchParams(location.hash.slice(1));
    const next = { store: h.get("store"), from: h.get("from"), to: h.get("to") };
    if (!next.store || (next.store === state.store && next.from === state.from && next.to === state.to)) return;
    Object.assign(state, next);
    sel.value = state.store; $("from").value = state.from; $("to").value = state.to;
    load();
  });
  let timer = null;
  window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(render, 150); });
  await load();
}

init().catch((err) => {
  $("error").textContent = "Could not start: " + err.message;
  $("error").hidden = false;
  document.body.dataset.state = "error";
});
