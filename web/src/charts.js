// Charts: Chart.js for the usage pages, a hand-drawn canvas sparkline per key row
// (dozens of rows; one full chart each would be heavy).
import {
  Chart, BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip,
} from 'chart.js';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);
Chart.defaults.animation = false;
Chart.defaults.font.family = 'system-ui, sans-serif';

const COLORS = {
  valid: '#1d6b2f', rate_limited: '#b07800', quota_exceeded: '#8a4fbf', insufficient_credits: '#a4161a',
  spend_cap_exceeded: '#d9480f', insufficient_permissions: '#0b5cad', expired_key: '#6c757d',
  revoked_key: '#343a40', inactive_key: '#adb5bd', environment_mismatch: '#17a2b8',
};
const FALLBACK = ['#5f3dc4', '#2b8a3e', '#e8590c', '#1971c2', '#c2255c', '#495057'];

// Usage entries: {start, total, outcomes} (also accepts {time, counts}).
export function entries(usage) {
  return ((usage && usage.data) || []).map((e) => {
    const outcomes = e.outcomes || e.counts || {};
    const total = typeof e.total === 'number' ? e.total : Object.values(outcomes).reduce((a, b) => a + b, 0);
    return { start: e.start || e.time, total, outcomes };
  });
}

export function usageChart(canvas, usage, label) {
  const rows = entries(usage);
  const codes = [...new Set(rows.flatMap((r) => Object.keys(r.outcomes)))].sort((a, b) =>
    (a === 'valid' ? -1 : b === 'valid' ? 1 : a.localeCompare(b)));
  const datasets = codes.map((c, i) => ({
    label: c.replace(/_/g, ' '),
    data: rows.map((r) => r.outcomes[c] || 0),
    backgroundColor: COLORS[c] || FALLBACK[i % FALLBACK.length],
    stack: 'checks',
  }));
  canvas.setAttribute('role', 'img');
  const total = rows.reduce((a, r) => a + r.total, 0);
  const byCode = codes.map((c) => `${rows.reduce((a, r) => a + (r.outcomes[c] || 0), 0)} ${c.replace(/_/g, ' ')}`);
  canvas.setAttribute('aria-label', `${label}: ${total} checks${byCode.length ? ` (${byCode.join(', ')})` : ''}`);
  canvas.dataset.total = String(total);
  return new Chart(canvas, {
    type: 'bar',
    data: { labels: rows.map((r) => (r.start || '').slice(0, 10)), datasets },
    options: {
      responsive: true, maintainAspectRatio: false,
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: 'bottom' } },
    },
  });
}

export function sparkline(canvas, usage) {
  const rows = entries(usage);
  const vals = rows.map((r) => r.total);
  const total = vals.reduce((a, b) => a + b, 0);
  canvas.setAttribute('aria-label', `${total} checks in the last 36 hours`);
  canvas.dataset.total = String(total);
  const ratio = window.devicePixelRatio || 1;
  const w = 108, hgt = 26;
  canvas.width = w * ratio;
  canvas.height = hgt * ratio;
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, w, hgt);
  const max = Math.max(1, ...vals);
  const n = Math.max(vals.length, 1);
  const bw = w / n;
  ctx.fillStyle = '#cfd6de';
  ctx.fillRect(0, hgt - 1, w, 1);
  ctx.fillStyle = '#0b5cad';
  vals.forEach((v, i) => {
    if (!v) return;
    const bh = Math.max(2, (v / max) * (hgt - 2));
    ctx.fillRect(i * bw, hgt - bh, Math.max(1, bw - 1), bh);
  });
}
