// The live dashboard's view (reclaimlab/present/dashboard_widget.py prepends the vendored uPlot,
// which defines `uPlot`). The kernel streams only new samples as custom messages:
//   {kind: "points", rows: [[t_s, part..., host...], ...], figures: [text...], samples: n}  (figures: when changed)
//   {kind: "events", events: [[t_s, label], ...]}
//   {kind: "backlog", rows: [...], figures: [...], events: [...], samples: n}   (the window so far, on request)
// Values are plain numbers in the unit the y axis's title names; `figures` are the newest row's
// readouts, already formatted by the kernel (dashboard_view.readouts): this file never formats a size.
// The data lives once per model (views of the same model share it) and is trimmed to the window,
// so an hour of presenting costs the browser what two minutes do.

const stores = new Map(); // uid -> store; only the last few dashboards are kept

function storeFor(model) {
  const uid = model.get("uid");
  let s = stores.get(uid);
  if (!s) {
    s = { rows: [], figures: null, events: [], samples: 0, listeners: new Set() };
    stores.set(uid, s);
    while (stores.size > 4) stores.delete(stores.keys().next().value);
  }
  return s;
}

function trim(s, model) {
  const maxRows = model.get("max_rows");
  const last = s.rows.length ? s.rows[s.rows.length - 1][0] : 0;
  const from = last - model.get("window_s");
  let cut = 0;
  while (cut < s.rows.length - 1 && s.rows[cut + 1][0] <= from) cut++; // keep one point left of the window
  cut = Math.max(cut, s.rows.length - maxRows);
  if (cut > 0) s.rows.splice(0, cut);
  let ecut = 0;
  while (ecut < s.events.length && s.events[ecut][0] < from) ecut++;
  ecut = Math.max(ecut, s.events.length - model.get("max_events"));
  if (ecut > 0) s.events.splice(0, ecut);
}

function keepFigures(s, msg) {  // the readouts of the newest row seen, [t_s, texts]
  const rows = msg.rows || [];
  if (!rows.length || !msg.figures) return;
  const t = rows[rows.length - 1][0];
  if (!s.figures || t >= s.figures[0]) s.figures = [t, msg.figures];
}

function apply(s, msg, model) {
  if (msg.kind === "backlog") {
    s.rows = msg.rows.slice();
    s.events = msg.events.slice();
    s.samples = msg.samples;
    keepFigures(s, msg);
  } else if (msg.kind === "points") {
    const last = s.rows.length ? s.rows[s.rows.length - 1][0] : -Infinity;
    for (const r of msg.rows) if (r[0] > last) s.rows.push(r); // a backlog may already hold them
    s.samples = Math.max(s.samples, msg.samples);
    keepFigures(s, msg);
  } else if (msg.kind === "events") {
    for (const e of msg.events) s.events.push(e);
  } else {
    return false;
  }
  trim(s, model);
  return true;
}

function esc(text) {
  const d = document.createElement("span");
  d.textContent = text;
  return d.innerHTML;
}

function initialize({ model }) {
  const s = storeFor(model);
  const onMsg = (msg) => {
    if (apply(s, msg, model)) s.listeners.forEach((f) => f());
  };
  model.on("msg:custom", onMsg);
  if (!s.rows.length) model.send({ kind: "backlog" }); // answered once the kernel is idle
  return () => model.off("msg:custom", onMsg);
}

function render({ model, el }) {
  const s = storeFor(model);
  const series = model.get("series"); // [{label, color, kind: "stack"|"line"}], in row order
  const fonts = model.get("fonts");
  const stack = series.map((d, i) => [d, i]).filter(([d]) => d.kind === "stack");
  const lines = series.map((d, i) => [d, i]).filter(([d]) => d.kind === "line");
  const hz = model.get("hz");
  const windowS = model.get("window_s");
  const yMax = model.get("y_max"); // in the axis unit, or null: the data's own top
  let frames = 0;

  el.classList.add("reclaimlab-dashboard");
  el.innerHTML = "";
  const title = document.createElement("div");
  title.className = "reclaimlab-dashboard-title";
  title.style.cssText = `font-size:${fonts.title}px;font-weight:bold`;
  title.textContent = model.get("title");
  const subtitle = document.createElement("div");
  subtitle.style.cssText = `font-size:${fonts.subtitle}px;color:#666;margin-bottom:4px`;
  const figures = document.createElement("div");
  figures.className = "reclaimlab-dashboard-figures";
  figures.style.cssText = `display:flex;flex-wrap:wrap;gap:4px 22px;line-height:1.5;font-size:${fonts.figures}px`;
  const chartEl = document.createElement("div");
  chartEl.className = "reclaimlab-dashboard-chart";
  const status = document.createElement("div");
  status.className = "reclaimlab-dashboard-status";
  el.append(title, subtitle, figures, chartEl, status);
  const showStatus = () => { status.innerHTML = model.get("status"); };
  showStatus();
  model.on("change:status", showStatus);

  let domain = [0, windowS];
  const stepped = uPlot.paths.stepped({ align: 1 });
  const axisFont = `${fonts.axis}px sans-serif`;
  const axisTitleFont = `${fonts.axis_title}px sans-serif`;
  const axis = { font: axisFont, labelFont: axisTitleFont, stroke: "#333",
                 grid: { stroke: "#eee", width: 1 }, ticks: { stroke: "#ccc", width: 1 } };
  // Stacked by drawing the cumulative sums from the top part down, each filled to zero:
  // the part below paints over the one above it.
  const topDown = stack.slice().reverse();
  const opts = {
    width: model.get("width"),
    height: model.get("height"),
    legend: { show: false },
    cursor: { show: false },
    scales: {
      x: { time: false, range: () => domain },
      y: { range: (u, lo, hi) => [0, yMax || Math.max(hi, 0.001)] },
    },
    axes: [
      { ...axis, label: model.get("x_title"), size: fonts.axis * 3 },
      { ...axis, label: model.get("y_title"), size: fonts.axis * 5, labelSize: fonts.axis_title * 2,
        values: (u, ticks) => ticks.map((v) => String(+v.toFixed(2))) },
    ],
    series: [
      {},
      ...topDown.map(([d]) => ({ label: d.label, stroke: d.color, fill: d.color, width: 0, paths: stepped, points: { show: false } })),
      ...lines.map(([d]) => ({ label: d.label, stroke: d.color, width: fonts.line_width, paths: stepped, points: { show: false } })),
    ],
    hooks: { draw: [(u) => drawEvents(u)] },
  };

  function drawEvents(u) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const dpr = uPlot.pxRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.strokeStyle = "#333";
    ctx.fillStyle = "#222";
    ctx.lineWidth = dpr;
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.font = `${fonts.events * dpr}px sans-serif`;
    for (const [t, label] of s.events) {
      if (t < domain[0] || t > domain[1]) continue;
      const x = Math.round(u.valToPos(t, "x", true));
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.save();
      ctx.translate(x - 3 * dpr, top + 4 * dpr);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "right";
      ctx.textBaseline = "bottom";
      ctx.fillText(label, 0, 0);
      ctx.restore();
    }
    ctx.restore();
  }

  const empty = [[], ...topDown.map(() => []), ...lines.map(() => [])];
  const u = new uPlot(opts, empty, chartEl);

  function draw() {
    frames++;
    const rows = s.rows;
    const last = rows.length ? rows[rows.length - 1] : null;
    const tLast = last ? last[0] : 0;
    const hi = Math.max(tLast, windowS); // fills from the left, then scrolls (as dashboard.x_domain did)
    domain = [hi - windowS, hi];
    const xs = rows.map((r) => r[0]);
    const cum = stack.map(() => new Array(rows.length));
    for (let j = 0; j < rows.length; j++) {
      let sum = 0;
      stack.forEach(([, i], k) => {
        const v = rows[j][1 + i];
        sum += v === null ? 0 : v;
        cum[k][j] = sum;
      });
    }
    const lineData = lines.map(([, i]) => rows.map((r) => r[1 + i]));
    u.setData([xs, ...cum.slice().reverse(), ...lineData]);

    subtitle.textContent = `live at ${hz} samples/s · t = ${tLast.toFixed(1)} s` +
      (lines.length ? " · line: " + lines.map(([d]) => d.label.split(" (")[0].toLowerCase()).join("; ") : "");
    const figs = s.figures ? s.figures[1] : [];
    const items = series.map((d, i) =>
      `<span title="${esc(d.label)}"><span style="color:${d.color}">&#9632;</span> ` +
      `${esc(d.label.split(" (")[0])} <b>${esc(figs[i] ?? "")}</b></span>`);
    items.push(`<span style="color:#666">t = ${tLast.toFixed(1)} s · ${hz} samples/s · window ${windowS} s</span>`);
    figures.innerHTML = last ? items.join("") : "waiting for the first sample…";
    figures.dataset.tS = last ? tLast.toFixed(3) : "";
    figures.dataset.samples = String(s.samples);
    figures.dataset.frame = String(frames);
    figures.dataset.points = String(rows.length);
  }

  // Redraw at most once per animation frame, however many messages arrived meanwhile.
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  };
  s.listeners.add(schedule);

  const fit = () => {
    const w = Math.min(model.get("width"), el.clientWidth || model.get("width"));
    if (w > 200 && w !== u.width) u.setSize({ width: w, height: model.get("height") });
  };
  const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(fit) : null;
  if (ro) ro.observe(el);
  draw();

  return () => {
    s.listeners.delete(schedule);
    model.off("change:status", showStatus);
    if (ro) ro.disconnect();
    u.destroy();
  };
}

export default { initialize, render };
export { storeFor, apply }; // for tests/test_dashboard.py (node)
