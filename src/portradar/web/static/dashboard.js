/* portradar dashboard: renders each page from the JSON API (/api/v1).
 *
 * No inline script or style (the CSP forbids both), no eval, nothing fetched from another host.
 * The page's state lives in the query string: every control rewrites it with history.pushState
 * and re-renders, so any view can be linked, bookmarked and reloaded. Charts are uPlot
 * (static/vendor/uplot), drawn in UTC. After each render <body data-ready="1"> is set (tests
 * wait for it).
 */
(function () {
  "use strict";

  const body = document.body;
  const main = document.getElementById("main");
  const PAGE = body.dataset.page || "overview";
  const PROTO_NAMES = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp" };
  const RANGES = [
    ["24h", "Last 24 hours"], ["3d", "Last 3 days"], ["7d", "Last 7 days"],
    ["14d", "Last 14 days"], ["30d", "Last 30 days"], ["90d", "Last 90 days"],
  ];
  const DIALECTS = ["nftables", "iptables", "pf", "windows", "cisco", "suricata"];
  const THEME = window.portradarTheme;  // static/theme.js (loaded before this file)
  const TOKEN_KEY = "portradar.token";
  let charts = [];
  let redrawCharts = null;  // set by the page that drew charts: draws them again (theme switch)
  let afterRender = [];  // callbacks that need the page in the document (chart widths)
  let generation = 0;

  /* ---------- DOM ---------- */

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svg(tag, attrs) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  function panel(title, hint, ...children) {
    return h("section", { class: "panel" },
      h("h2", {}, h("span", { text: title }), hint ? h("span", { class: "hint" }, hint) : null),
      children);
  }

  function badge(text, cls) {
    return h("span", { class: "badge " + (cls || String(text).toLowerCase()), text: text });
  }

  function empty(text) {
    return h("p", { class: "empty", text: text });
  }

  /* ---------- formatting ---------- */

  const numFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const fracFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

  function fmtNum(v) {
    if (v === null || v === undefined || v === "") return "–";
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    return Math.abs(n) < 10 && !Number.isInteger(n) ? fracFmt.format(n) : numFmt.format(n);
  }

  function compact(n) {
    if (n === null || n === undefined) return "";
    const a = Math.abs(n);
    if (a >= 1e9) return fracFmt.format(n / 1e9) + "G";
    if (a >= 1e6) return fracFmt.format(n / 1e6) + "M";
    if (a >= 1e4) return numFmt.format(n / 1e3) + "k";
    return numFmt.format(n);
  }

  function parseTime(v) {
    if (v === null || v === undefined || v === "") return null;
    if (typeof v === "number") return new Date(v > 1e12 ? v : v * 1000);
    let s = String(v);
    if (/^\d{4}-\d\d-\d\d$/.test(s)) s += "T00:00:00Z";
    else if (!/[zZ]|[+-]\d\d:?\d\d$/.test(s)) s += "Z";  // times are UTC
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function fmtTime(v, dayOnly) {
    const d = parseTime(v);
    if (!d) return v ? String(v) : "–";
    const iso = d.toISOString();
    return dayOnly ? iso.slice(0, 10) : iso.slice(0, 16).replace("T", " ");
  }

  function fmtDuration(seconds) {
    const s = Math.abs(seconds);
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return fracFmt.format(s / 3600) + " h";
    return fracFmt.format(s / 86400) + " d";
  }

  function protoName(p) {
    if (p === null || p === undefined) return "tcp";
    return PROTO_NAMES[p] || String(p).toLowerCase();
  }

  function isScalar(v) {
    return v === null || ["string", "number", "boolean"].includes(typeof v);
  }

  function fmtValue(v) {
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (Array.isArray(v)) {
      if (!v.every(isScalar)) return v.length + " items";
      const head = v.slice(0, 8).map(fmtValue).join(", ");
      return v.length > 8 ? `${head} … (${fmtNum(v.length)})` : head;
    }
    if (v && typeof v === "object") return JSON.stringify(v);
    if (typeof v === "number") return fmtNum(v);
    if (typeof v === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v)) return fmtTime(v);
    return v === null || v === undefined || v === "" ? "–" : String(v);
  }

  function label(key) {
    const s = String(key).replace(/_/g, " ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  /* ---------- URL state ---------- */

  function query() {
    return new URLSearchParams(location.search);
  }

  function setQuery(updates, replace) {
    const q = query();
    for (const [k, v] of Object.entries(updates)) {
      if (v === null || v === undefined || v === "") q.delete(k);
      else q.set(k, v);
    }
    const s = q.toString();
    const url = location.pathname + (s ? "?" + s : "");
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
    render();
  }

  /** A link to another page that keeps the time range. */
  function withRange(path, extra) {
    const q = query();
    const out = new URLSearchParams();
    for (const k of ["since", "until"]) if (q.get(k)) out.set(k, q.get(k));
    for (const [k, v] of Object.entries(extra || {})) if (v !== null && v !== undefined) out.set(k, v);
    const s = out.toString();
    return path + (s ? "?" + s : "");
  }

  function portHref(proto, port) {
    return withRange("/ports/" + encodeURIComponent(protoName(proto)) + "/" + encodeURIComponent(port));
  }

  function scannerHref(address) {
    return withRange("/scanners/" + String(address).split("/").map(encodeURIComponent).join("/"));
  }

  /* ---------- API ---------- */

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, params, post) {
    const url = new URL("/api/v1" + path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
    }
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const init = { headers: headers, credentials: "same-origin" };
    if (post !== undefined) {
      init.method = "POST";
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(post);
    }
    const r = await fetch(url, init);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const msg = data && data.error ? data.error.message : r.status + " " + r.statusText;
      throw new ApiError(r.status, msg);
    }
    return data;
  }

  function rangeParams(q) {
    return { since: q.get("since"), until: q.get("until") };
  }

  function listParams(q, extra) {
    return Object.assign(rangeParams(q), { limit: q.get("limit") || 50, offset: q.get("offset") || 0 },
      extra || {});
  }

  /* ---------- shared controls ---------- */

  function rangePicker() {
    const q = query();
    const since = q.get("since") || "";
    const until = q.get("until") || "";
    const preset = RANGES.some(([v]) => v === since) && !until ? since : (since || until ? "custom" : "7d");
    const sel = h("select", { "aria-label": "Time range", id: "range" },
      RANGES.map(([v, t]) => h("option", { value: v, selected: v === preset, text: t })),
      h("option", { value: "custom", selected: preset === "custom", text: "Custom…" }));
    const dayOf = (s) => (/^\d{4}-\d\d-\d\d/.test(s) ? s.slice(0, 10) : "");
    // the API's until is exclusive; the picker's last day is inclusive
    const shiftDay = (d, n) => (d ? new Date(Date.parse(d + "T00:00:00Z") + n * 86400e3).toISOString().slice(0, 10) : "");
    const lastDay = /^\d{4}-\d\d-\d\d$/.test(until) ? shiftDay(until, -1) : dayOf(until);
    const from = h("input", { type: "date", "aria-label": "From", value: dayOf(since) });
    const to = h("input", { type: "date", "aria-label": "To (inclusive)", value: lastDay });
    const apply = h("button", { type: "submit", class: "primary", text: "Apply" });
    const custom = h("span", { class: "toolbar", hidden: preset !== "custom" }, from, "–", to, apply);
    sel.addEventListener("change", () => {
      if (sel.value === "custom") { custom.hidden = false; return; }
      setQuery({ since: sel.value, until: null, offset: null });
    });
    const form = h("form", { class: "toolbar", id: "range-picker" },
      h("label", {}, "Range", sel), custom);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      setQuery({ since: from.value || null, until: shiftDay(to.value, 1) || null, offset: null });
    });
    return form;
  }

  function segmented(name, options, current, ariaLabel) {
    return h("div", { class: "segmented", role: "group", "aria-label": ariaLabel || name },
      options.map(([value, text]) => h("button", {
        type: "button", "aria-pressed": String(value === current), "data-value": value, text: text,
        onclick: () => setQuery({ [name]: value, offset: null }),
      })));
  }

  function pageHead(title, sub, ...tools) {
    return h("div", { class: "page-head" },
      h("div", {}, h("h1", { class: "page-title", text: title }),
        sub ? h("p", { class: "page-sub" }, sub) : null),
      h("div", { class: "toolbar" }, tools));
  }

  function pager(resp) {
    if (!resp || resp.total === undefined) return null;
    const off = Number(resp.offset || 0);
    const lim = Number(resp.limit || 50);
    const total = Number(resp.total);
    const shown = (resp.items || []).length;
    const link = (o, text, ok) => {
      const q = query();
      q.set("offset", String(Math.max(0, o)));
      return h("a", { href: "?" + q.toString(), class: ok ? "" : "disabled", text: text,
        onclick: (ev) => { ev.preventDefault(); if (ok) setQuery({ offset: Math.max(0, o) || null }); } });
    };
    return h("div", { class: "pager" },
      h("span", { text: total ? `${fmtNum(off + 1)}–${fmtNum(off + shown)} of ${fmtNum(total)}` : "none" }),
      link(off - lim, "‹ Previous", off > 0), link(off + lim, "Next ›", off + shown < total));
  }

  /* ---------- tables ---------- */

  function table(cols, rows, rowAttrs) {
    if (!rows || !rows.length) return empty("Nothing in this range.");
    return h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { class: c.num ? "num" : "", text: c.label })))),
      h("tbody", {}, rows.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {},
        cols.map((c) => {
          const v = c.get ? c.get(r) : r[c.key];
          const out = c.fmt ? c.fmt(v, r) : fmtValue(v);
          return h("td", { class: c.num ? "num" : (c.wrap ? "wrap" : "") }, out);
        }))))));
  }

  /** Columns for rows whose shape the contract leaves open: known keys first, then the rest. */
  function autoCols(rows, preferred, special, max, exclude) {
    const skip = (exclude || []).concat(LONG_FIELDS);
    const keys = [];
    for (const r of rows || []) {
      for (const [k, v] of Object.entries(r)) {
        if (!keys.includes(k) && !skip.includes(k) && (isScalar(v) || (Array.isArray(v) && v.every(isScalar)))) keys.push(k);
      }
    }
    const ordered = preferred.filter((k) => keys.includes(k)).concat(keys.filter((k) => !preferred.includes(k)));
    return ordered.slice(0, max || 10).map((k) => Object.assign(
      { key: k, label: label(k), num: (rows || []).some((r) => typeof r[k] === "number") && !/_id$|^id$/.test(k) },
      (special || {})[k] || {}));
  }

  /** Fields too long for a table cell (shown on the detail pages instead). */
  const LONG_FIELDS = ["evidence", "member_list", "reasons_long"];

  function addressOf(r) {
    return r.address || r.source || r.src || r.scanner;
  }

  const SCANNER_COLS = ["address", "source", "status", "kind", "type", "tool", "probes", "ports",
    "targets", "sensors", "confidence", "first_seen", "last_seen", "campaign_id", "port_list"];

  function scannerSpecial() {
    const addr = { fmt: (v) => (v ? h("a", { href: scannerHref(v), class: "mono", text: v }) : "–") };
    return {
      address: addr, source: addr,
      campaign_id: { fmt: (v) => (v === null || v === undefined ? "–" : h("a", { href: withRange("/campaigns/" + v), text: "#" + v })) },
      confidence: { fmt: (v) => (typeof v === "number" ? Math.round(v * 100) + "%" : fmtValue(v)) },
      status: { fmt: (v) => (v ? badge(v) : "–") },
    };
  }

  /** A record as a definition list: scalar fields, minus ``skip``, in ``order`` first when
   * given (``only`` keeps just those); ``special[k].fmt`` formats a field. */
  function kv(obj, skip, special, order, only) {
    let entries = Object.entries(obj || {}).filter(([k, v]) => !(skip || []).includes(k) &&
      (isScalar(v) || (Array.isArray(v) && v.every(isScalar))));
    if (order) {
      const rank = (k) => (order.includes(k) ? order.indexOf(k) : order.length);
      entries = entries.filter(([k]) => !only || order.includes(k)).sort((a, b) => rank(a[0]) - rank(b[0]));
    }
    if (!entries.length) return empty("Nothing known.");
    return h("dl", { class: "kv" }, entries.map(([k, v]) => {
      const f = (special || {})[k];
      return [h("dt", { text: label(k) }), h("dd", {}, f && f.fmt ? f.fmt(v, obj) : fmtValue(v))];
    }));
  }

  function portLink(v, r) {
    return v === null || v === undefined ? "–"
      : h("a", { href: portHref(r && r.proto, v), class: "mono", text: `${protoName(r && r.proto)}/${v}` });
  }

  /** Object-valued or list-of-object fields of a detail record, each as its own table. */
  function nested(obj, skip) {
    const out = [];
    for (const [k, v] of Object.entries(obj || {})) {
      if ((skip || []).includes(k)) continue;
      if (Array.isArray(v) && v.length && !v.every(isScalar)) {
        const special = Object.assign(scannerSpecial(), { port: { fmt: portLink } });
        const hasPort = v.some((r) => r && r.port !== undefined);
        out.push(panel(label(k), v.length + "",
          table(autoCols(v, ["port"].concat(SCANNER_COLS), special, 10, hasPort ? ["proto"] : []), v)));
      } else if (v && typeof v === "object" && !Array.isArray(v)) {
        const link = k === "campaign" && v.id !== undefined
          ? h("a", { href: withRange("/campaigns/" + v.id), text: "open campaign" }) : null;
        out.push(panel(label(k), link, kv(v, ["evidence"]), v.evidence ? h("p", { class: "page-sub", text: v.evidence }) : null));
      }
    }
    return out;
  }

  /* ---------- sparkline (SVG) ---------- */

  function sparkline(values, spike) {
    const vals = (values || []).map(Number).filter((v) => Number.isFinite(v));
    const w = 120, hgt = 28, pad = 2;
    const el = svg("svg", { class: "spark" + (spike ? " spike" : ""), viewBox: `0 0 ${w} ${hgt}`,
      preserveAspectRatio: "none", role: "img" });
    if (vals.length < 2) return el;
    const lo = Math.min(...vals), hi = Math.max(...vals), span = hi - lo || 1;
    const pts = vals.map((v, i) => [pad + (i * (w - 2 * pad)) / (vals.length - 1),
      hgt - pad - ((v - lo) / span) * (hgt - 2 * pad)]);
    const line = pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ");
    el.append(svg("polygon", { points: `${pad},${hgt - pad} ${line} ${w - pad},${hgt - pad}` }));
    el.append(svg("polyline", { points: line }));
    if (spike) {
      const last = pts[pts.length - 1];
      el.append(svg("circle", { cx: last[0].toFixed(1), cy: last[1].toFixed(1), r: 2.2 }));
    }
    const t = svg("title", {});
    t.textContent = `min ${fmtNum(lo)}, max ${fmtNum(hi)}, last ${fmtNum(vals[vals.length - 1])}`;
    el.append(t);
    el.setAttribute("aria-label", t.textContent);
    return el;
  }

  /* ---------- charts (uPlot) ---------- */

  /** The chart colours of the theme in force: dashboard.css's --chart-* and --series-*. */
  function chartColors() {
    const css = getComputedStyle(document.documentElement);
    const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    return {
      axis: v("--chart-axis", "#3d4a5c"), grid: v("--chart-grid", "rgba(0, 0, 0, .1)"),
      tick: v("--chart-tick", "rgba(0, 0, 0, .25)"),
      sources: v("--series-sources", "#1f6fb2"), expected: v("--series-expected", "#6b7889"),
      band: v("--series-band", "rgba(46, 133, 64, 0.14)"),
      bandLine: v("--series-band-line", "rgba(46, 133, 64, 0.45)"),
      records: v("--series-records", "#6a4c93"), targets: v("--series-targets", "#d9620b"),
    };
  }

  /** An axis in the theme's colours (labels, grid and ticks). */
  function themedAxis(colors, opts) {
    const axis = Object.assign({ stroke: colors.axis, ticks: { stroke: colors.tick, width: 1 } }, opts);
    axis.grid = Object.assign({ stroke: colors.grid, width: 1 }, opts.grid);
    return axis;
  }

  function utc(ts) {
    return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  }

  /** x-axis tick labels in UTC: "01-24" for day ticks, "06:00" within a day (date at midnight). */
  function timeTicks(u, splits, axisIdx, space, incr) {
    return splits.map((t) => {
      const iso = new Date(t * 1000).toISOString();
      const day = iso.slice(5, 10), hm = iso.slice(11, 16);
      if (incr >= 86400 || hm === "00:00") return incr >= 86400 * 28 ? iso.slice(0, 7) : day;
      return hm;
    });
  }

  function timeValue(u, v) {
    return v === null || v === undefined ? "–" : fmtTime(v);
  }

  function numValue(u, v) {
    return v === null || v === undefined ? "–" : fmtNum(v);
  }

  /** Shaded, labelled spike spans over the plot area: DOM elements, so they can be inspected. */
  function spikePlugin(spikes, xmax) {
    function place(u) {
      const layer = u.over.querySelector(".spike-layer") || u.over.appendChild(h("div", { class: "spike-layer" }));
      layer.replaceChildren();
      const width = u.over.clientWidth;
      for (const s of spikes) {
        const a = u.valToPos(s.t0, "x");
        const b = u.valToPos(s.t1 === null ? xmax : s.t1, "x");
        const left = Math.max(0, Math.min(width, a));
        const right = Math.max(0, Math.min(width, b));
        if (right <= left && !(a >= 0 && a <= width)) continue;
        const m = h("div", {
          class: "spike-marker" + (s.t1 === null ? " ongoing" : " ended"), "data-onset": s.onset,
          "data-end": s.end || "", "data-peak": s.peak || "",
          title: `spike: onset ${fmtTime(s.onset)}, ${s.end ? "end " + fmtTime(s.end) : "ongoing"}`,
        }, h("span", { class: "spike-label", text: (s.period === "day" && s.bucket !== "day" ? "daily spike" : "spike") + (s.end ? "" : " (ongoing)") }));
        m.style.left = left + "px";
        m.style.width = Math.max(2, right - left) + "px";
        // a narrow span near the right edge: the label goes left of the onset line
        if (right - left < 120 && left > width / 2) m.classList.add("label-left");
        layer.append(m);
      }
    }
    return { hooks: { ready: place, setScale: place, setSize: place } };
  }

  /** A tooltip at the cursor with the time and every shown series' value; when the cursor
   * leaves, the legend goes back to the newest bucket's values. */
  function tooltipPlugin() {
    let tip = null;
    const newest = (u) => u.setLegend({ idx: u.data[0].length - 1 });
    return {
      hooks: {
        ready: (u) => {
          tip = h("div", { class: "chart-tip", role: "tooltip" });
          u.over.append(tip);
          u.over.addEventListener("mouseleave", () => {
            tip.classList.remove("on");
            setTimeout(() => newest(u), 0);
          });
          newest(u);
        },
        setCursor: (u) => {
          const i = u.cursor.idx;
          if (!tip || i === null || i === undefined || u.cursor.left < 0) { if (tip) tip.classList.remove("on"); return; }
          const lines = [h("strong", { text: fmtTime(u.data[0][i]) + " UTC" })];
          u.series.forEach((sr, k) => {
            if (k === 0 || !sr.show) return;
            lines.push(h("div", { text: `${sr.label}: ${fmtNum(u.data[k][i])}` }));
          });
          tip.replaceChildren(...lines);
          tip.classList.add("on");
          const w = u.over.clientWidth;
          const left = u.cursor.left + 14;
          tip.style.left = (left + tip.offsetWidth > w ? u.cursor.left - tip.offsetWidth - 14 : left) + "px";
          tip.style.top = Math.max(0, u.cursor.top - tip.offsetHeight - 8) + "px";
        },
      },
    };
  }

  function makeChart(container, opts, data) {
    const width = Math.max(300, container.clientWidth || 800);
    opts = Object.assign({ width: width, height: 260, tzDate: utc }, opts);
    opts.plugins = (opts.plugins || []).concat([tooltipPlugin()]);
    const u = new uPlot(opts, data, container);
    charts.push(u);
    if (window.ResizeObserver) {
      const ro = new ResizeObserver(() => {
        const w = Math.max(300, container.clientWidth);
        if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height: u.height });
      });
      ro.observe(container);
      u._ro = ro;
    }
    return u;
  }

  /** Zoom of one chart applied to the others (same x scale). */
  function syncZoom(list, onZoom) {
    let busy = false;
    for (const u of list) {
      u.hooks.setScale = u.hooks.setScale || [];
      u.hooks.setScale.push((self, key) => {
        if (key !== "x" || busy) return;
        busy = true;
        const { min, max } = self.scales.x;
        for (const o of list) if (o !== self) o.setScale("x", { min: min, max: max });
        busy = false;
        onZoom(min, max);
      });
    }
  }

  /* ---------- token (servers bound beyond loopback) ---------- */

  function tokenForm(message) {
    const input = h("input", { type: "password", "aria-label": "API token", autocomplete: "off" });
    const form = h("form", { class: "panel" },
      h("h2", { text: "This server needs an API token" }),
      h("p", { class: "page-sub", text: message }),
      h("div", { class: "toolbar" }, input, h("button", { type: "submit", class: "primary", text: "Use token" })),
      h("p", { class: "chart-help", text: "Kept in this tab only (session storage)." }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      render();
    });
    return form;
  }

  /* ---------- pages ---------- */

  async function overviewPage(q) {
    const ov = await api("/overview", rangeParams(q));
    const level = (ov.level && ov.level.level) || "green";
    const reasons = (ov.level && ov.level.reasons) || [];
    const period = ov.period || "hour";
    const movers = ov.movers || [];
    const alerts = ov.open_alerts || [];
    const sensors = ov.sensors || [];
    return [
      pageHead("Overview", ov.newest_event ? `Newest event ${fmtTime(ov.newest_event)} UTC · by ${period}` : "No events stored yet",
        rangePicker()),
      h("section", { class: `panel level level-${level}`, id: "level", "data-level": level },
        h("div", {}, h("div", { class: "k", text: "Threat level" }), h("div", { class: "level-badge", text: level })),
        h("div", {}, h("div", { class: "k", text: "Why" }),
          reasons.length ? h("ul", {}, reasons.map((r) => h("li", { text: r }))) : empty("Nothing unusual."))),
      h("div", { class: "stats" },
        stat("Events / s", fmtNum(ov.events_per_s)),
        stat("Events in range", compact(ov.events_total)),
        stat("Open alerts", fmtNum(alerts.length)),
        stat("Sensors", fmtNum(sensors.length)),
        stat("Newest event", fmtTime(ov.newest_event), true)),
      h("div", { class: "grid side" },
        panel("Ports moving against their baseline", `sources per ${period}, ratio to baseline`,
          table([
            { key: "port", label: "Port", fmt: (v, r) => h("a", { href: portHref(r.proto, v), class: "mono port-link", text: `${protoName(r.proto)}/${v}` }) },
            { key: "service", label: "Service" },
            { key: "sources", label: "Sources", num: true },
            { key: "baseline", label: "Baseline", num: true },
            { key: "ratio", label: "Ratio", num: true, fmt: (v) => (v === null || v === undefined ? "–" : "×" + fmtNum(v)) },
            { key: "sparkline", label: "Trend", fmt: (v, r) => sparkline(v, r.spike) },
            { key: "spike", label: "", fmt: (v) => (v ? badge("spike") : "") },
          ], movers, (r) => ({ class: r.spike ? "is-spike mover" : "mover", "data-port": r.port,
            "data-proto": protoName(r.proto), "data-spike": String(!!r.spike) }))),
        h("div", {},
          panel("Open alerts", h("a", { href: withRange("/alerts"), text: "all alerts" }),
            alerts.length ? h("ul", { class: "actions alert-list" }, alerts.map(alertSummary)) : empty("No open alerts.")),
          panel("Sensors", h("a", { href: withRange("/sensors"), text: "health" }),
            table([
              { key: "sensor", label: "Sensor", fmt: (v) => h("span", { class: "mono", text: v }) },
              { key: "last_activity", label: "Last activity", fmt: (v) => (v ? fmtTime(v) : "–") },
              { key: "events_per_s", label: "Ev/s", num: true },
            ], sensors)))),
    ];
  }

  function stat(k, v, small) {
    return h("div", { class: "stat" }, h("div", { class: "k", text: k }), h("div", { class: "v" + (small ? " small" : ""), text: v }));
  }

  function alertSummary(a) {
    const id = a.id !== undefined ? a.id : a.alert_id;
    const port = a.port !== undefined ? h("a", { href: portHref(a.proto, a.port), class: "mono", text: `${protoName(a.proto)}/${a.port}` }) : null;
    const when = a.onset || a.opened_at;
    return h("li", { "data-alert": id },
      a.level ? badge(a.level) : null, " ", port, " ", a.kind || "alert", a.spike_kind ? ` (${a.spike_kind})` : "",
      when ? h("span", { class: "page-sub", text: ` · since ${fmtTime(when)}` }) : null,
      a.reasons && a.reasons.length ? h("div", { class: "page-sub", text: a.reasons[0] }) : null);
  }

  async function portsPage(q) {
    const by = q.get("by") || "sources";
    const period = q.get("period") || "day";
    const resp = await api("/ports", listParams(q, { by: by, period: period, sensor: q.get("sensor") }));
    const rows = resp.items || [];
    return [
      pageHead("Ports", rows.length && rows[0].bucket
        ? `Top ports by ${by} in the ${period} of ${fmtTime(rows[0].bucket, period === "day")} UTC (the range's last), change against the ${period} before`
        : `Top ports by ${by} in the range's last ${period}, change against the ${period} before`,
        segmented("by", [["records", "Records"], ["sources", "Sources"], ["targets", "Targets"]], by, "Rank by"),
        segmented("period", [["hour", "Hour"], ["day", "Day"]], period, "Period"),
        rangePicker()),
      panel("Top ports", null, table([
        { key: "rank", label: "#", num: true },
        { key: "port", label: "Port", fmt: (v, r) => h("a", { href: portHref(r.proto, v), class: "mono", text: `${protoName(r.proto)}/${v}` }) },
        { key: "service", label: "Service" },
        { key: "records", label: "Records", num: true },
        { key: "sources", label: "Sources", num: true },
        { key: "targets", label: "Targets", num: true },
        { key: "change", label: "Change", num: true, fmt: (v) => (v === null || v === undefined ? "new" : (v >= 0 ? "+" : "") + fmtNum(v * 100) + "%") },
      ], rows), pager(resp)),
    ];
  }

  async function portPage(q) {
    const proto = body.dataset.proto;
    const port = body.dataset.port;
    const bucket = q.get("bucket") || "hour";
    const dialect = q.get("rule") || "nftables";
    // A worm doubling daily is a spike to the day detector but too smooth for the hour one,
    // so the hourly view of the API also carries the day detector's spikes over the range
    // (each spike's ``period`` says which detector found it).
    const [d, sens] = await Promise.all([
      api(`/ports/${proto}/${port}`, Object.assign(rangeParams(q), { bucket: bucket, sensor: q.get("sensor") })),
      api("/sensors", { limit: 1000 }).catch(() => ({ items: [] })),
    ]);
    const series = d.series || [];
    const spikes = (d.spikes || []).map((s) => Object.assign({ period: bucket }, s))
      .sort((a, b) => String(a.onset).localeCompare(String(b.onset)));
    const sensorSel = h("select", { "aria-label": "Sensor", id: "sensor" },
      h("option", { value: "", text: "All sensors" }),
      (sens.items || []).map((s) => h("option", { value: s.sensor, selected: s.sensor === q.get("sensor"), text: s.sensor })));
    sensorSel.addEventListener("change", () => setQuery({ sensor: sensorSel.value || null }));

    const chartSources = h("div", { class: "chart", id: "chart-sources", "data-spike-count": spikes.length,
      "data-spike-onsets": spikes.map((s) => s.onset).join(","), "data-points": series.length });
    const chartVolume = h("div", { class: "chart", id: "chart-volume", "data-points": series.length });
    const zoomBtn = h("button", { type: "button", hidden: true, id: "zoom-apply", text: "Use zoom as time range" });
    const per = bucket === "day" ? "day" : "hour";
    const out = [
      pageHead(`${proto}/${d.port !== undefined ? d.port : port}` + (d.service ? ` · ${d.service}` : ""),
        [d.level ? [badge(d.level), " "] : null, `History by ${per}: sources with the baseline band, records and targets`],
        segmented("bucket", [["hour", "Hour"], ["day", "Day"]], bucket, "Bucket"),
        h("label", {}, "Sensor", sensorSel), rangePicker()),
      panel(`Sources per ${per}`, zoomBtn, chartSources,
        h("p", { class: "chart-help", text: "Hover for values · drag to zoom · double-click to reset · red: spikes from onset to end · green band: baseline ± 2 sd" })),
      panel(`Records and targets per ${per}`, null, chartVolume),
      panel("Spikes", spikes.length + "", table([
        { key: "onset", label: "Onset" },
        { key: "period", label: "Detector", fmt: (v) => (v === "day" ? "daily" : "hourly") },
        { key: "kind", label: "Kind" },
        { key: "peak", label: "Peak" },
        { key: "end", label: "End", fmt: (v) => (v ? fmtTime(v) : badge("ongoing", "open")) },
        { key: "status", label: "Status", fmt: (v) => (v ? badge(v) : "–") },
        { key: "peak_sources", label: "Peak sources", num: true },
        { key: "baseline_sources", label: "Baseline", num: true },
        { key: "doubling_hours", label: "Doubling time", num: true, fmt: (v) => (v === null || v === undefined ? "–" : fmtNum(v) + " h") },
      ], spikes, (s) => ({ class: "spike-row", "data-onset": s.onset }))),
      h("div", { class: "grid side" },
        panel("Top scanners", h("a", { href: withRange("/scanners", { port: port }), text: "all scanners of this port" }),
          table(["source", "kind", "type", "tool", "probes", "targets", "sensors", "last_seen"]
            .map((k) => Object.assign({ key: k, label: label(k), num: ["probes", "targets", "sensors"].includes(k) }, scannerSpecial()[k] || {})),
          d.top_scanners || [])),
        h("div", {},
          panel("Exposure", null, exposureView(d.exposure)),
          panel("Recommended actions", null, actionList(d.actions || [])))),
      panel("Related vulnerabilities", (d.vulnerabilities || []).length + "", vulnTable(d.vulnerabilities || [])),
      rulesPanel(d.rules || {}, dialect, proto, port),
    ];
    // charts need their containers in the document to know their width
    afterRender.push(() => drawPortCharts(chartSources, chartVolume, zoomBtn, series, spikes, bucket));
    return out;
  }

  function drawPortCharts(elSources, elVolume, zoomBtn, series, spikes, bucket) {
    if (!series.length) {
      elSources.append(empty("No events on this port in this range."));
      return;
    }
    const xs = series.map((r) => parseTime(r.ts).getTime() / 1000);
    const col = (k) => series.map((r) => (r[k] === null || r[k] === undefined ? null : Number(r[k])));
    const step = bucket === "day" ? 86400 : 3600;
    const xmax = xs[xs.length - 1] + step;
    const spans = spikes.map((s) => ({
      onset: s.onset, end: s.end, peak: s.peak, period: s.period, bucket: bucket,
      t0: parseTime(s.onset).getTime() / 1000,
      t1: s.end ? parseTime(s.end).getTime() / 1000 : null,
    }));
    const cursor = { sync: { key: "port-" + body.dataset.port }, drag: { x: true, y: false } };
    const xSeries = { label: "Time (UTC)", value: timeValue };
    const yAxis = { values: (u, vals) => vals.map(compact), size: 56 };
    const x0 = xs[0], x1 = xs[xs.length - 1];
    let drawn = [];

    function draw(zoom) {
      const c = chartColors();
      elSources.dataset.zoom = "";
      const a = makeChart(elSources, {
        cursor: cursor,
        series: [xSeries,
          { label: "Sources", stroke: c.sources, width: 2, value: numValue, points: { show: false } },
          { label: "Expected", stroke: c.expected, width: 1, dash: [5, 4], value: numValue, points: { show: false } },
          { label: "Band low", stroke: c.bandLine, width: 1, value: numValue, points: { show: false } },
          { label: "Band high", stroke: c.bandLine, width: 1, value: numValue, points: { show: false } }],
        bands: [{ series: [4, 3], fill: c.band }],
        axes: [themedAxis(c, { values: timeTicks }), themedAxis(c, yAxis)],
        plugins: [spikePlugin(spans, xmax)],
      }, [xs, col("sources"), col("expected"), col("band_low"), col("band_high")]);
      const b = makeChart(elVolume, {
        height: 200, cursor: cursor,
        series: [xSeries,
          { label: "Records", stroke: c.records, width: 1.5, scale: "rec", value: numValue, points: { show: false } },
          { label: "Targets", stroke: c.targets, width: 1.5, scale: "tgt", value: numValue, points: { show: false } }],
        axes: [themedAxis(c, { values: timeTicks }), themedAxis(c, Object.assign({ scale: "rec" }, yAxis)),
          themedAxis(c, Object.assign({ scale: "tgt", side: 1, grid: { show: false } }, yAxis))],
        plugins: [spikePlugin(spans, xmax)],
      }, [xs, col("records"), col("targets")]);
      syncZoom([a, b], (min, max) => {
        const zoomed = min > x0 + 1 || max < x1 - 1;
        zoomBtn.hidden = !zoomed;
        elSources.dataset.zoom = zoomed ? `${Math.floor(min)},${Math.ceil(max)}` : "";
        zoomBtn.onclick = () => setQuery({
          since: new Date(Math.floor(min) * 1000).toISOString().slice(0, 19) + "Z",
          until: new Date(Math.ceil(max) * 1000).toISOString().slice(0, 19) + "Z",
        });
      });
      if (zoom) a.setScale("x", zoom);
      for (const el of [elSources, elVolume]) {
        el.dataset.theme = THEME ? THEME.current() : "light";
        el.dataset.axisColor = c.axis;
      }
      drawn = [a, b];
    }

    draw(null);
    // a theme switch draws the charts again in the new colours, keeping the zoom
    redrawCharts = () => {
      const x = drawn[0].scales.x;
      const zoom = x.min > x0 + 1 || x.max < x1 - 1 ? { min: x.min, max: x.max } : null;
      for (const u of drawn) {
        if (u._ro) u._ro.disconnect();
        u.destroy();
      }
      charts = charts.filter((u) => !drawn.includes(u));
      draw(zoom);
    };
    elSources.dataset.drawn = "1";
  }

  function vulnTable(vulns) {
    if (!vulns.length) return empty("No known vulnerabilities for this port.");
    return table([
      { key: "cve", label: "CVE", fmt: (v) => h("span", { class: "mono", text: v }) },
      { key: "title", label: "Title", wrap: true },
      { key: "bulletins", label: "Bulletin" },
      { key: "patched", label: "Patched", fmt: (v) => (v ? fmtTime(v, true) : badge("no patch", "red")) },
      { key: "exploit_published", label: "Exploit public", fmt: (v) => (v ? fmtTime(v, true) : "–") },
      { key: "epss", label: "EPSS", num: true, fmt: (v) => (typeof v === "number" ? (v * 100).toFixed(1) + "%" : "–") },
      { key: "age_days", label: "Age (days)", num: true },
      { key: "kev", label: "", fmt: (v, r) => [v ? badge("KEV", "kev") : null, " ", r.wormable ? badge("wormable") : null] },
    ], vulns);
  }

  function exposureView(exp) {
    if (!exp) return empty("Unknown.");
    if (exp.known === false) {
      return empty("Unknown: no inbound connections accepted in the logs and no asset inventory " +
        "for this port (portradar intel assets).");
    }
    const exposed = Array.isArray(exp.exposed) ? exp.exposed : [];
    const vulnerable = Array.isArray(exp.vulnerable) ? exp.vulnerable : [];
    const hosts = exposed.filter((x) => x && typeof x === "object");
    const rest = kv(exp, ["known", "exposed", "vulnerable"]);
    return [
      hosts.length ? table(autoCols(hosts, ["host", "source", "observed", "declared", "first_seen", "last_seen"], {}, 6), hosts)
        : exposed.length ? h("p", { class: "mono", text: exposed.join(", ") })
          : h("p", { text: "No host of yours seen reachable on this port from outside." }),
      vulnerable.length ? h("p", {}, h("strong", { text: "Vulnerable: " }), h("span", { class: "mono", text: vulnerable.join(", ") })) : null,
      rest.tagName === "DL" ? rest : null,
    ];
  }

  function actionList(actions) {
    if (!actions.length) return empty("Nothing to do.");
    return h("ul", { class: "actions" }, actions.map((a) => h("li", {},
      typeof a === "string" ? a : (a.text || a.action || a.title || JSON.stringify(a)))));
  }

  function rulesPanel(rules, dialect, proto, port) {
    const names = DIALECTS.filter((d) => rules[d]).concat(Object.keys(rules).filter((d) => !DIALECTS.includes(d)));
    if (!names.length) return panel("Rules to copy", null, empty("No rules for this port."));
    const current = names.includes(dialect) ? dialect : names[0];
    const text = typeof rules[current] === "string" ? rules[current] : (rules[current].text || "");
    const pre = h("pre", { class: "rule", id: "rule-text", "data-dialect": current, tabindex: "0" }, text);
    const status = h("span", { class: "copied", role: "status" });
    const copy = h("button", { type: "button", class: "primary", id: "copy-rule", text: "Copy",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch (e) {  // no clipboard API (older browsers): select the text for Ctrl+C
          const range = document.createRange();
          range.selectNodeContents(pre);
          const sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          status.textContent = "Selected: press Ctrl+C";
          return;
        }
        status.textContent = "Copied";
        setTimeout(() => { status.textContent = ""; }, 2000);
      } });
    return panel(`Rules to copy: block ${proto}/${port}`, null,
      h("div", { class: "rules-head" },
        h("div", { class: "segmented", role: "tablist", "aria-label": "Dialect" },
          names.map((n) => h("button", { type: "button", role: "tab", "aria-selected": String(n === current),
            "aria-pressed": String(n === current), "data-dialect": n, text: n,
            onclick: () => setQuery({ rule: n }, true) }))),
        h("div", { class: "toolbar" }, status, copy)),
      pre);
  }

  async function scannersPage(q) {
    const resp = await api("/scanners", listParams(q, { port: q.get("port"), kind: q.get("kind") }));
    const rows = resp.items || [];
    const port = h("input", { type: "number", min: 0, max: 65535, name: "port", placeholder: "any", value: q.get("port") || "" });
    const kind = h("select", { name: "kind" },
      ["", "single", "vertical", "horizontal", "block", "random"].map((k) =>
        h("option", { value: k, selected: k === (q.get("kind") || ""), text: k || "any" })));
    const form = h("form", { class: "filters" }, h("label", {}, "Port", port), h("label", {}, "Kind", kind),
      h("button", { type: "submit", text: "Filter" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      setQuery({ port: port.value || null, kind: kind.value || null, offset: null });
    });
    kind.addEventListener("change", () => form.requestSubmit());
    return [
      pageHead("Scanners", "Sources the detectors flagged, newest evidence first", form, rangePicker()),
      panel("Scanners", fmtNum(resp.total) + " in range",
        table(autoCols(rows, SCANNER_COLS, scannerSpecial()), rows, (r) => ({ "data-address": addressOf(r) })),
        pager(resp)),
    ];
  }

  async function scannerPage(q) {
    const addr = body.dataset.address;
    const d = await api("/scanners/" + addr.split("/").map(encodeURIComponent).join("/"), rangeParams(q));
    const ports = d.port_list || d.ports_list || null;
    const verdict = ["source", "address", "status", "kind", "type", "tool", "detector", "confidence",
      "campaign_id", "benign_name", "first_seen", "last_seen", "flagged_at", "probes", "packets", "targets",
      "ports", "sensors", "addresses", "answered", "established", "rejected"];
    const special = scannerSpecial();
    return [
      pageHead(addr, [d.kind ? badge(d.kind, "") : null, " ", d.tool ? badge(d.tool, "") : null, " ",
        d.status ? badge(d.status) : null], rangePicker()),
      d.evidence ? panel("Evidence", null, h("p", { text: d.evidence })) : null,
      h("div", { class: "grid two" },
        panel("Verdict", null, kv(d, ["evidence", "port_list"], special, verdict, true)),
        h("div", {},
          Array.isArray(ports) ? panel("Ports probed", fmtNum(ports.length),
            h("p", {}, ports.slice(0, 300).map((p) => [h("a", { href: portHref(d.proto || "tcp", p), class: "mono", text: p }), " "])))
            : null,
          panel("Detector measurements", null,
            kv(Object.fromEntries(Object.entries(d).filter(([k]) => !verdict.includes(k))), ["evidence", "port_list"])))),
      nested(d),
    ];
  }

  async function campaignsPage(q) {
    const resp = await api("/campaigns", listParams(q));
    const rows = resp.items || [];
    const special = Object.assign(scannerSpecial(), {
      id: { fmt: (v) => h("a", { href: withRange("/campaigns/" + v), text: "#" + v }) },
      campaign_id: { fmt: (v) => h("a", { href: withRange("/campaigns/" + v), text: "#" + v }) },
      port: { fmt: portLink },
      example: { fmt: (v) => (v ? h("a", { href: scannerHref(v), class: "mono", text: v }) : "–") },
      ports: { fmt: (v, r) => (Array.isArray(v) ? h("span", { class: "campaign-ports" }, v.slice(0, 6).map((p) => (p && typeof p === "object"
        ? [h("a", { href: portHref(p.proto, p.port), class: "mono", "data-port": p.port, title: `${fmtNum(p.members)} members`, text: `${protoName(p.proto)}/${p.port}` }), " "]
        : [portLink(p, r), " "])), v.length > 6 ? `… (${v.length})` : "") : fmtValue(v)) },
    });
    return [
      pageHead("Campaigns", "Scanners grouped by what they probe and when", rangePicker()),
      panel("Campaigns", fmtNum(resp.total),
        table(autoCols(rows, ["id", "campaign_id", "ports", "port", "kind", "type", "rule", "members", "sources",
          "scanners", "probes", "targets", "sensors", "tool", "network", "example", "start", "first_seen",
          "end", "last_seen"], special, 12), rows),
        pager(resp)),
    ];
  }

  async function campaignPage(q) {
    const id = body.dataset.id;
    const d = await api("/campaigns/" + encodeURIComponent(id), rangeParams(q));
    const members = Array.isArray(d.member_list) ? d.member_list : [];
    const scanners = Array.isArray(d.scanners) ? d.scanners : [];
    // the ports the members probed during the campaign, most members first (from the API)
    const ports = Array.isArray(d.ports) ? d.ports : [];
    const lead = ports.length ? ports[0] : null;
    return [
      pageHead(`Campaign #${id}`, lead ? [h("a", { href: portHref(lead.proto, lead.port), text: `${protoName(lead.proto)}/${lead.port}` }), d.rule ? ` · ${d.rule}` : ""] : (d.rule || null), rangePicker()),
      d.evidence ? panel("Evidence", null, h("p", { text: d.evidence })) : null,
      h("div", { class: "grid two" },
        panel("Summary", null, kv(d, ["evidence", "member_list"])),
        h("div", {},
          ports.length ? panel("Ports probed", "by the members, during the campaign",
            h("ul", { class: "actions", id: "campaign-ports" }, ports.map((p) => h("li", { "data-port": p.port },
              h("a", { href: portHref(p.proto, p.port), class: "mono", text: `${protoName(p.proto)}/${p.port}` }),
              ` · ${fmtNum(p.members)} of ${fmtNum(d.members)} members`)))) : null,
          members.length > scanners.length ? panel("Members", fmtNum(members.length),
            h("p", { class: "chips" }, members.slice(0, 500).map((m) => [h("a", { href: scannerHref(m), class: "mono", text: m }), " "]))) : null)),
      nested(d, ["member_list", "ports"]),
    ];
  }

  async function alertsPage(q) {
    const status = q.get("status") || "open";
    const resp = await api("/alerts", listParams(q, { status: status === "all" ? null : status }));
    const rows = resp.items || [];
    const special = {
      id: { fmt: (v) => "#" + v }, alert_id: { fmt: (v) => "#" + v },
      status: { fmt: (v) => (v ? badge(v) : "–") },
      level: { fmt: (v) => (v ? badge(v) : "–") },
      port: { fmt: (v, r) => h("a", { href: portHref(r.proto, v), class: "mono", text: `${protoName(r.proto)}/${v}` }) },
      reasons: { wrap: true, fmt: (v) => (Array.isArray(v) ? v.join("; ") : fmtValue(v)) },
      proto: { fmt: (v) => protoName(v) },
    };
    return [
      pageHead("Alerts", "Spike alerts: opened, updated while they last, resolved when the port is back to normal",
        segmented("status", [["open", "Open"], ["resolved", "Resolved"], ["all", "All"]], status, "Status"),
        rangePicker()),
      panel("Alerts", fmtNum(resp.total),
        table([
          { key: "alert_id", label: "#", get: (r) => (r.alert_id !== undefined ? r.alert_id : r.id), fmt: (v) => "#" + v },
          { key: "status", label: "Status", fmt: special.status.fmt },
          { key: "severity", label: "Severity", num: true },
          { key: "level", label: "Level", fmt: special.level.fmt },
          { key: "port", label: "Port", fmt: special.port.fmt },
          { key: "kind", label: "Kind", fmt: (v, r) => [v || "–", r.spike_kind ? ` (${r.spike_kind})` : ""] },
          { key: "onset", label: "Onset" },
          { key: "opened_at", label: "Opened" },
          { key: "resolved_at", label: "Resolved" },
          { key: "peak_sources", label: "Peak sources", num: true },
          { key: "baseline_sources", label: "Baseline", num: true },
          { key: "reasons", label: "Why", fmt: special.reasons.fmt, wrap: true },
          { key: "acknowledged", label: "Acknowledged", get: (r) => (r.status === "open" || r.acknowledged ? r : null), fmt: ackCell },
        ].filter((c) => rows.some((r) => { const v = c.get ? c.get(r) : r[c.key]; return v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && !v.length); })),
        rows, (r) => ({ "data-alert": r.alert_id !== undefined ? r.alert_id : r.id, "data-status": r.status })),
        pager(resp)),
    ];
  }

  /** Who acknowledged an alert, or a button to acknowledge it (admin role; the server says
   * 403 to a read-only user and 409 to a read-only server, shown next to the button). */
  function ackCell(r) {
    if (!r) return "";
    if (r.acknowledged || r.acked_by) {
      return h("span", { class: "page-sub", text: `${r.acked_by || "yes"}${r.acked_at ? ", " + fmtTime(r.acked_at) : ""}` });
    }
    const id = r.alert_id !== undefined ? r.alert_id : r.id;
    const note = h("span", { class: "copied", role: "status" });
    const btn = h("button", { type: "button", class: "ack", "data-alert": id, text: "Acknowledge",
      onclick: async () => {
        btn.disabled = true;
        try {
          await api(`/alerts/${encodeURIComponent(id)}/ack`, {}, {});
          render();
        } catch (err) {
          note.textContent = err.message;
          btn.disabled = false;
        }
      } });
    return [btn, " ", note];
  }

  async function sensorsPage(q) {
    const resp = await api("/sensors", listParams(q));
    const rows = resp.items || [];
    // lag in event time: the end of each sensor's last hour with events against the newest
    // sensor's (``last_seen``, when the collector last heard from it, exists only for
    // sensors of portradar collect: ``source`` says which)
    const newest = Math.max(...rows.map((r) => (parseTime(r.last_activity) || new Date(0)).getTime()), 0);
    const lag = (r) => (parseTime(r.last_activity) ? (newest - parseTime(r.last_activity).getTime()) / 1000 : null);
    // health thresholds, see docs/dashboard.md: an hour behind the newest sensor (one chart
    // bucket), clock skew over half the collector's 300 s window (collect/signing.py)
    const health = (r) => {
      const issues = [];
      if (lag(r) !== null && lag(r) > 3600) issues.push("behind");
      if (r.skew_s !== null && r.skew_s !== undefined && Math.abs(r.skew_s) > 150) issues.push("clock skew");
      if (r.rejected) issues.push("rejected batches");
      return issues;
    };
    return [
      pageHead("Sensors", "Health of each sensor as the collector sees it", rangePicker()),
      panel("Sensors", fmtNum(resp.total), table([
        { key: "sensor", label: "Sensor", fmt: (v) => h("span", { class: "mono", text: v }) },
        { key: "health", label: "Health", get: health, fmt: (v) => (v.length ? v.map((i) => [badge(i, "orange"), " "]) : badge("ok")) },
        { key: "source", label: "Known from", fmt: (v) => (v === "collector" ? "collector" : "stored activity") },
        { key: "last_seen", label: "Last batch (UTC)", fmt: (v) => (v ? fmtTime(v) : "–") },
        { key: "last_activity", label: "Last activity (UTC)", fmt: (v) => (v ? fmtTime(v) : "–") },
        { key: "lag", label: "Behind newest", num: true, get: lag, fmt: (v) => (v === null ? "–" : v < 1 ? "0" : fmtDuration(v)) },
        { key: "events", label: "Events", num: true },
        { key: "events_per_s", label: "Events / s", num: true },
        { key: "skew_s", label: "Clock skew", num: true, fmt: (v) => (v === null || v === undefined ? "–" : fmtNum(v) + " s") },
        { key: "batches", label: "Batches", num: true },
        { key: "rejected", label: "Rejected", num: true },
      ], rows, (r) => ({ class: health(r).length ? "warn" : "", "data-sensor": r.sensor })),
      rows.some((r) => r.source && r.source !== "collector")
        ? h("p", { class: "chart-help", text: "Sensors the collector has not heard from are known from the stored " +
          "activity only: no last batch, clock skew, batches or rejected batches (those come from portradar " +
          "collect); last activity is the end of their last hour with events." }) : null,
      pager(resp)),
    ];
  }

  async function notFoundPage() {
    return [
      pageHead("Not found", null),
      h("div", { class: "error-box", role: "alert", id: "not-found", text: body.dataset.message || "No such page." }),
      panel("Where to go", null, h("ul", { class: "actions" },
        h("li", {}, h("a", { href: "/", text: "Overview" }), ": the current level, moving ports and alerts"),
        h("li", {}, h("a", { href: "/ports", text: "Ports" }), ": the top ports, each linking to its page"),
        h("li", {}, h("a", { href: "/scanners", text: "Scanners" }), ": flagged sources"))),
    ];
  }

  const PAGES = {
    notfound: notFoundPage,
    overview: overviewPage, ports: portsPage, port: portPage, scanners: scannersPage,
    scanner: scannerPage, campaigns: campaignsPage, campaign: campaignPage, alerts: alertsPage,
    sensors: sensorsPage,
  };

  /* ---------- render loop ---------- */

  function keepRangeInNav() {
    for (const a of document.querySelectorAll(".topbar nav a")) {
      const path = new URL(a.href, location.origin).pathname;
      a.setAttribute("href", withRange(path));
    }
  }

  async function render() {
    const gen = ++generation;
    body.dataset.ready = "0";
    const q = query();
    afterRender = [];
    let nodes;
    try {
      nodes = await PAGES[PAGE](q);
    } catch (err) {
      if (gen !== generation) return;
      if (err instanceof ApiError && err.status === 401) nodes = [tokenForm(err.message)];
      else {
        nodes = [h("div", { class: "error-box", role: "alert", id: "error" },
          h("strong", { text: err instanceof ApiError ? `Error ${err.status}: ` : "Error: " }), err.message)];
        console.warn("portradar:", err);
      }
    }
    if (gen !== generation) return;
    for (const u of charts) { if (u._ro) u._ro.disconnect(); u.destroy(); }
    charts = [];
    redrawCharts = null;
    main.replaceChildren(...nodes.flat(Infinity).filter((n) => n));
    keepRangeInNav();
    for (const fn of afterRender.splice(0)) fn();
    // let the charts (queued during page build) draw before declaring the page ready
    await new Promise((r) => requestAnimationFrame(() => r()));
    if (gen === generation) body.dataset.ready = "1";
  }

  /* ---------- theme ---------- */

  /** The light/dark switch in the top bar (the OS preference until the user picks one;
   * theme.js remembers the choice). Charts are drawn again in the new colours. */
  function themeToggle() {
    if (!THEME) return;
    const nav = document.querySelector(".topbar");
    const btn = h("button", { type: "button", class: "theme-toggle", id: "theme-toggle" });
    const show = () => {
      const dark = THEME.current() === "dark";
      btn.setAttribute("aria-pressed", dark ? "true" : "false");
      btn.textContent = dark ? "☾ Dark" : "☀ Light";
      btn.title = (dark ? "Dark theme" : "Light theme") +
        (THEME.chosen() ? " (your choice)" : " (as the system)") + ": click for " + (dark ? "light" : "dark");
      btn.setAttribute("aria-label", "Dark theme");
    };
    btn.addEventListener("click", () => THEME.set(THEME.current() === "dark" ? "light" : "dark"));
    THEME.onChange(() => {
      show();
      if (redrawCharts) redrawCharts();
    });
    show();
    nav.append(btn);
  }

  themeToggle();
  window.addEventListener("popstate", render);
  render();
})();
