/**
 * otter dashboard: polls /dashboard/data once a second (the first time in full, then only the
 * points newer than the ones it holds), keeps the history in plain arrays capped at the server's
 * ring sizes, and draws one uPlot chart per series group, the headline numbers and the tables.
 * Plain script, no build step; everything it loads comes from otter (see the page's CSP).
 */
"use strict";

(() => {
  const DATA_URL = "/dashboard/data";
  const POLL_MS = 1000;
  const STALE_MS = 3500;
  const LIMITS = { fine: 900, coarse: 2880 };
  const CHART_HEIGHT = 190;
  const PALETTE = [
    "#2f6fdb",
    "#e8833a",
    "#1f9d55",
    "#c2417c",
    "#8a63d2",
    "#0f9fa8",
    "#b8860b",
    "#d64545",
    "#5b7083",
  ];

  /** Headline numbers: each the sum of some series' latest values. */
  const TILES = [
    {
      id: "announces",
      label: "announces/s",
      unit: "/s",
      sum: ["announces.http", "announces.udp", "announces.ws"],
      parts: [["HTTP", "announces.http"], ["UDP", "announces.udp"], ["WS", "announces.ws"]],
    },
    {
      id: "scrapes",
      label: "scrapes/s",
      unit: "/s",
      sum: ["scrapes.http", "scrapes.udp", "scrapes.ws"],
      parts: [["HTTP", "scrapes.http"], ["UDP", "scrapes.udp"], ["WS", "scrapes.ws"]],
    },
    {
      id: "peers",
      label: "peers",
      unit: "peers",
      sum: ["peers.seeders.v4", "peers.leechers.v4", "peers.seeders.v6", "peers.leechers.v6"],
      parts: [
        ["seeders", "peers.seeders.v4", "peers.seeders.v6"],
        ["leechers", "peers.leechers.v4", "peers.leechers.v6"],
      ],
    },
    { id: "torrents", label: "torrents", unit: "torrents", sum: ["torrents"], parts: [] },
    {
      id: "connections",
      label: "open connections",
      unit: "connections",
      sum: ["connections.http", "connections.ws"],
      parts: [["HTTP", "connections.http"], ["WS", "connections.ws"]],
    },
    {
      id: "errors",
      label: "error replies/s",
      unit: "/s",
      sum: ["errors.http", "errors.udp", "errors.ws"],
      parts: [["HTTP", "errors.http"], ["UDP", "errors.udp"], ["WS", "errors.ws"]],
    },
    {
      id: "memory",
      label: "memory (RSS)",
      unit: "bytes",
      sum: ["memory.rss"],
      parts: [["heap", "memory.heap"]],
    },
    { id: "lag", label: "event-loop lag", unit: "ms", sum: ["loop.lag"], parts: [] },
  ];

  const $ = (id) => document.getElementById(id);

  const state = {
    /** The series table from the server; null until the first full load. */
    series: null,
    index: new Map(),
    /** [{ name, unit, members: [series index] }] in table order. */
    groups: [],
    base: 0,
    rings: { fine: emptyRing(0), coarse: emptyRing(0) },
    range: "fine",
    /** group name -> { card, plotEl, emptyEl, plot, key } */
    charts: new Map(),
    latest: [],
    lastOk: 0,
  };

  function emptyRing(count) {
    return { t: [], x: [], v: Array.from({ length: count }, () => []), seen: new Set() };
  }

  // ------------------------------------------------------------------ formatting

  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

  function formatValue(v, unit) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    switch (unit) {
      case "/s":
        return v >= 100 ? integer.format(v) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
      case "bytes":
        return formatBytes(v);
      case "ms":
        return `${v >= 10 ? integer.format(v) : v.toFixed(1)} ms`;
      case "state":
        return String(v);
      default:
        return integer.format(v);
    }
  }

  function formatBytes(v) {
    const mib = v / 1048576;
    if (mib >= 1024) return `${(mib / 1024).toFixed(2)} GiB`;
    return `${mib >= 100 ? integer.format(mib) : mib.toFixed(1)} MiB`;
  }

  function formatAxis(v, unit) {
    if (unit === "bytes") {
      if (v === 0) return "0";
      return v >= 10 * 1048576 ? `${integer.format(v / 1048576)} MiB` : formatBytes(v);
    }
    if (unit === "ms") return `${v} ms`;
    const abs = Math.abs(v);
    if (abs >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
    if (abs >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (abs >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
    return String(+v.toFixed(2));
  }

  function formatDuration(seconds) {
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    if (d > 0) return `${d} d ${h} h`;
    if (h > 0) return `${h} h ${m} min`;
    if (m > 0) return `${m} min ${s} s`;
    return `${s} s`;
  }

  function title(group) {
    return group.charAt(0).toUpperCase() + group.slice(1);
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // ------------------------------------------------------------------ data

  async function poll() {
    let data;
    try {
      const rings = state.rings;
      const url = state.series === null
        ? DATA_URL
        : `${DATA_URL}?since=${lastTime(rings.fine)}&coarseSince=${lastTime(rings.coarse)}`;
      const response = await fetch(url, { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      data = await response.json();
    } catch (error) {
      // The tracker is away (restarting, unreachable): say so and keep trying.
      setStatus("stale", `no data: ${error && error.message ? error.message : error}`);
      setTimeout(poll, POLL_MS);
      return;
    }
    setTimeout(poll, POLL_MS);
    // Outside the try: a bug in drawing is an uncaught exception in the console, not "stale".
    apply(data);
    state.lastOk = performance.now();
    setStatus("live", "updated once a second");
  }

  function lastTime(ring) {
    return ring.t.length === 0 ? -1 : ring.t[ring.t.length - 1];
  }

  function setStatus(kind, detail) {
    const el = $("status");
    el.className = `status ${kind}`;
    el.textContent = kind;
    el.title = detail;
  }

  function apply(data) {
    const history = data.history;
    if (data.series) {
      setup(data);
    } else if (state.series === null || history.base !== state.base) {
      // A restarted tracker: start over with a full load.
      state.series = null;
      return;
    }
    append(state.rings.fine, history.fine, LIMITS.fine);
    append(state.rings.coarse, history.coarse, LIMITS.coarse);
    state.latest = history.latest;
    $("uptime").textContent = formatDuration(data.uptime);
    updateTiles();
    updateCharts();
    updateBusiest(data.busiest);
    updateClients(data.clients);
  }

  function setup(data) {
    state.series = data.series;
    state.base = data.history.base;
    state.index = new Map(data.series.map((s, i) => [s.name, i]));
    state.groups = [];
    const byName = new Map();
    data.series.forEach((s, i) => {
      let group = byName.get(s.group);
      if (!group) {
        group = { name: s.group, unit: s.unit, members: [] };
        byName.set(s.group, group);
        state.groups.push(group);
      }
      group.members.push(i);
    });
    state.rings = { fine: emptyRing(data.series.length), coarse: emptyRing(data.series.length) };
    buildCharts();
    buildTiles();
    renderInfo(data.info);
  }

  function append(ring, part, limit) {
    for (let i = 0; i < part.t.length; i++) {
      ring.t.push(part.t[i]);
      ring.x.push((state.base + part.t[i]) / 1000);
      for (let s = 0; s < ring.v.length; s++) {
        const v = part.v[s][i];
        ring.v[s].push(v);
        if (v !== null) ring.seen.add(s);
      }
    }
    const excess = ring.t.length - limit;
    if (excess > 0) {
      ring.t.splice(0, excess);
      ring.x.splice(0, excess);
      for (const column of ring.v) column.splice(0, excess);
    }
  }

  function latestOf(name) {
    const i = state.index.get(name);
    const v = i === undefined ? null : state.latest[i];
    return v === undefined ? null : v;
  }

  function sumOf(names) {
    let total = null;
    for (const name of names) {
      const v = latestOf(name);
      if (v !== null) total = (total ?? 0) + v;
    }
    return total;
  }

  // ------------------------------------------------------------------ tiles

  function buildTiles() {
    const root = $("tiles");
    root.replaceChildren();
    for (const tile of TILES) {
      const el = element("div", "tile");
      el.id = `tile-${tile.id}`;
      el.append(
        element("div", "label", tile.label),
        element("div", "value", "–"),
        element("div", "sub", ""),
      );
      root.append(el);
    }
  }

  function updateTiles() {
    for (const tile of TILES) {
      const el = $(`tile-${tile.id}`);
      el.querySelector(".value").textContent = formatValue(sumOf(tile.sum), tile.unit);
      const parts = [];
      for (const [label, ...names] of tile.parts) {
        const v = sumOf(names);
        const unit = tile.unit === "bytes" ? "bytes" : tile.unit;
        if (v !== null) parts.push(`${label} ${formatValue(v, unit)}`);
      }
      el.querySelector(".sub").textContent = parts.join(" · ");
    }
  }

  // ------------------------------------------------------------------ charts

  function buildCharts() {
    for (const chart of state.charts.values()) chart.plot?.destroy();
    state.charts.clear();
    const root = $("charts");
    root.replaceChildren();
    for (const group of state.groups) {
      const card = element("div", "card chart");
      card.dataset.group = group.name;
      const unit = group.unit === "/s" ? " (per second)" : "";
      const plotEl = element("div", "plot");
      const emptyEl = element("div", "empty", "not recorded by this tracker");
      card.append(element("h2", "", `${title(group.name)}${unit}`), plotEl, emptyEl);
      root.append(card);
      state.charts.set(group.name, { card, plotEl, emptyEl, plot: null, key: "" });
    }
  }

  function updateCharts() {
    const ring = state.rings[state.range];
    for (const group of state.groups) {
      const chart = state.charts.get(group.name);
      const present = group.members.filter((s) => ring.seen.has(s));
      const key = present.join(",");
      chart.emptyEl.hidden = present.length > 0;
      chart.plotEl.hidden = present.length === 0;
      const data = [ring.x, ...present.map((s) => ring.v[s])];
      if (key !== chart.key) {
        chart.plot?.destroy();
        chart.plot = present.length === 0 ? null : makePlot(group, present, chart.plotEl, data);
        chart.key = key;
      } else if (chart.plot) {
        chart.plot.setData(data);
      }
    }
  }

  function makePlot(group, present, el, data) {
    const css = getComputedStyle(document.documentElement);
    const axis = css.getPropertyValue("--axis").trim();
    const grid = css.getPropertyValue("--grid").trim();
    const axisStyle = { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { show: false } };
    const unit = group.unit;
    const options = {
      width: Math.max(240, el.clientWidth),
      height: CHART_HEIGHT,
      cursor: { drag: { x: false, y: false, setScale: false } },
      scales: {
        x: { time: true },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [
        axisStyle,
        { ...axisStyle, size: 70, values: (_u, splits) => splits.map((v) => formatAxis(v, unit)) },
      ],
      // Away from the cursor the legend shows the newest values instead of blanks.
      series: [
        {
          value: (_u, v, _s, idx) =>
            idx === null || v === null ? "now" : new Date(v * 1000).toLocaleTimeString(),
        },
        ...present.map((s, i) => ({
          label: state.series[s].label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          points: { show: false },
          value: (u, v, si, idx) => formatValue(idx === null ? lastValue(u.data[si]) : v, unit),
        })),
      ],
    };
    // uPlot: the global that uPlot.iife.min.js defines.
    return new uPlot(options, data, el);
  }

  function lastValue(column) {
    for (let i = column.length - 1; i >= 0; i--) if (column[i] !== null) return column[i];
    return null;
  }

  function resizeCharts() {
    for (const chart of state.charts.values()) {
      if (chart.plot && chart.plotEl.clientWidth > 0) {
        chart.plot.setSize({ width: chart.plotEl.clientWidth, height: CHART_HEIGHT });
      }
    }
  }

  function setRange(range) {
    state.range = range;
    $("range-fine").classList.toggle("active", range === "fine");
    $("range-coarse").classList.toggle("active", range === "coarse");
    for (const chart of state.charts.values()) {
      chart.plot?.destroy();
      chart.plot = null;
      chart.key = "";
    }
    if (state.series !== null) updateCharts();
  }

  // ------------------------------------------------------------------ tables

  function cell(text, className) {
    return element("td", className, text);
  }

  function updateBusiest(busiest) {
    const body = $("busiest").querySelector("tbody");
    const torrents = busiest ? busiest.torrents : [];
    $("busiest-empty").hidden = torrents.length > 0;
    $("busiest-age").textContent = busiest
      ? `snapshot ${formatDuration(Math.round(busiest.ageSeconds))} old`
      : "";
    body.replaceChildren(...torrents.map((t) => {
      const row = element("tr");
      const hash = cell(`${t.infoHash.slice(0, 16)}…`, "mono");
      hash.title = t.infoHash;
      row.append(
        hash,
        cell(integer.format(t.peers), "num"),
        cell(integer.format(t.seeders), "num"),
        cell(integer.format(t.leechers), "num"),
        cell(integer.format(t.completed), "num"),
      );
      return row;
    }));
  }

  function updateClients(clients) {
    const body = $("clients").querySelector("tbody");
    const shares = clients ? clients.shares : [];
    const total = shares.reduce((sum, s) => sum + s.announces, 0);
    $("clients-empty").hidden = shares.length > 0;
    $("clients-window").textContent = clients
      ? `last ${clients.windowSeconds / 60}–${(2 * clients.windowSeconds) / 60} min`
      : "";
    body.replaceChildren(...shares.map((s) => {
      const row = element("tr");
      const share = total > 0 ? (100 * s.announces) / total : 0;
      const shareCell = cell("", "share");
      const bar = element("div", "bar");
      bar.style.width = `${Math.max(share, 0.5)}%`;
      bar.title = `${share.toFixed(1)}%`;
      shareCell.append(bar);
      row.append(
        cell(s.name),
        cell(s.code, "mono"),
        cell(integer.format(s.announces), "num"),
        shareCell,
      );
      return row;
    }));
  }

  function renderInfo(info) {
    $("version").textContent = info.version;
    const about = $("about");
    about.replaceChildren();
    const started = new Date(info.startedAtMs);
    for (
      const [term, value] of [["version", info.version], ["started", started.toLocaleString()]]
    ) {
      about.append(element("dt", "", term), element("dd", "", value));
    }
    $("listeners").replaceChildren(...info.listeners.map((l) => element("li", "", l)));
    const body = $("config").querySelector("tbody");
    body.replaceChildren(
      ...Object.entries(info.config).map(([key, value]) => {
        const row = element("tr");
        const text = Array.isArray(value)
          ? value.join(", ")
          : value === "" || value === null
          ? "—"
          : String(value);
        row.append(cell(key), cell(text));
        return row;
      }),
    );
  }

  // ------------------------------------------------------------------ start

  $("range-fine").addEventListener("click", () => setRange("fine"));
  $("range-coarse").addEventListener("click", () => setRange("coarse"));
  let resizePending = false;
  new ResizeObserver(() => {
    if (resizePending) return;
    resizePending = true;
    requestAnimationFrame(() => {
      resizePending = false;
      resizeCharts();
    });
  }).observe($("charts"));
  setInterval(() => {
    if (state.lastOk > 0 && performance.now() - state.lastOk > STALE_MS) {
      setStatus("stale", "no answer from the tracker for a few seconds");
    }
  }, 1000);
  poll();
})();
