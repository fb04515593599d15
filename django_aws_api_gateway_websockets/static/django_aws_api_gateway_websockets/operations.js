// The WebSocket operations page: four uPlot charts, refreshed from the admin's data/ URL.
(() => {
  "use strict";
  const root = document.getElementById("ops");
  if (!root || typeof uPlot === "undefined") return;
  const PALETTE = ["#2f6fed", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#6b7280"];
  const COLORS = { connect: "#16a34a", disconnect: "#6b7280", message: "#2f6fed",
    delivered: "#16a34a", gone: "#6b7280", failed: "#dc2626", throttled: "#d97706" };
  const charts = {};

  // The card's inner width (the chart element itself is empty until uPlot fills it).
  function width(element) {
    const card = element.parentElement;
    const style = getComputedStyle(card);
    return Math.max(320, card.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight));
  }
  const COUNTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

  function series(named) {
    return named.map(([label, data], i) => ({ label, data, color: COLORS[label] || PALETTE[i % PALETTE.length] }));
  }

  function draw(id, minutes, lines) {
    const element = document.getElementById(id);
    const data = [minutes, ...lines.map((line) => line.data)];
    const key = lines.map((line) => line.label).join("\u0000");
    const chart = charts[id];
    if (chart && chart.key === key) {
      chart.plot.setData(data);
      return;
    }
    if (chart) chart.plot.destroy();
    element.dataset.series = String(lines.length);
    const plot = new uPlot({
      width: width(element), height: 220,
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { size: 50, incrs: COUNTS }],
      series: [{}, ...lines.map((line) => ({ label: line.label, stroke: line.color, width: 2,
        fill: `${line.color}18`, points: { show: false } }))],
    }, data, element);
    charts[id] = { plot, key };
  }

  function render(snapshot) {
    const m = snapshot.minutes;
    const open = snapshot.open.length ? snapshot.open : [{ label: "no connections", data: m.map(() => 0) }];
    draw("chart-open", m, series(open.map((line) => [line.label, line.data])));
    draw("chart-events", m, series(Object.entries(snapshot.events)));
    draw("chart-sends", m, series(Object.entries(snapshot.sends)));
    const rejected = Object.entries(snapshot.rejected);
    draw("chart-rejected", m, series(rejected.length ? rejected : [["none", m.map(() => 0)]]));
    const t = snapshot.totals;
    document.getElementById("tile-open").textContent = snapshot.open_total;
    document.getElementById("tile-connect").textContent = t.connect;
    document.getElementById("tile-message").textContent = t.message;
    document.getElementById("tile-rejected").textContent = t.rejected;
    document.getElementById("tile-failed").textContent = t.send_failed + t.send_throttled;
    const body = document.getElementById("ops-open-table");
    body.replaceChildren(...snapshot.open_now.map((row) => {
      const tr = document.createElement("tr");
      for (const value of [row.gateway_channel, row.open]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    }));
    document.getElementById("ops-updated").textContent = `updated ${new Date(snapshot.generated_at).toLocaleTimeString()}`;
    root.dataset.generatedAt = snapshot.generated_at;
  }

  async function refresh() {
    try {
      const response = await fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) render(await response.json());
      else document.getElementById("ops-updated").textContent = `refresh failed (${response.status})`;
    } catch (_error) {
      document.getElementById("ops-updated").textContent = "refresh failed (network)";
    }
  }

  window.addEventListener("resize", () => {
    for (const [id, chart] of Object.entries(charts)) chart.plot.setSize({ width: width(document.getElementById(id)), height: 220 });
  });
  render(JSON.parse(document.getElementById("ops-initial").textContent));
  setInterval(refresh, 1000 * Number(root.dataset.refresh || 5));
})();
