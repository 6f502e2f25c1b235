"""A one-page HTML dashboard: jobs, their progress and metrics, element maps as images (no build step)."""

from __future__ import annotations

__all__ = ["DASHBOARD_HTML"]

DASHBOARD_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>nxsci reconstructions</title>
<style>
  body { font-family: sans-serif; margin: 1.5em; color: #222; }
  table { border-collapse: collapse; width: 100%; }
  th, td { border-bottom: 1px solid #ddd; padding: 0.4em; text-align: left; vertical-align: top; }
  progress { width: 8em; }
  .status-failed { color: #b00; } .status-succeeded { color: #070; } .status-cancelled { color: #777; }
  figure { display: inline-block; margin: 0 0.5em 0 0; text-align: center; }
  figure img { width: 96px; height: 96px; image-rendering: pixelated; border: 1px solid #ccc; }
  .error { color: #b00; font-size: 0.9em; }
  .warnings { color: #a60; font-size: 0.9em; margin: 0.3em 0 0 1.2em; padding: 0; }
  #info { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>nxsci reconstructions</h1>
<p id="info">loading...</p>
<table>
  <thead><tr><th>job</th><th>run</th><th>method</th><th>status</th><th>progress</th><th>metrics</th>
  <th>maps</th></tr></thead>
  <tbody id="jobs"></tbody>
</table>
<script>
const API = "/api/v1";
const shown = {};   // job id -> status shown, so finished rows (and their images) are not rebuilt
function esc(s) { return String(s).replace(/[&<>"']/g, c => "&#" + c.charCodeAt(0) + ";"); }
function fmt(v) { return typeof v === "number" ? v.toPrecision(4) : esc(v); }
// the prior each element got ("auto" chooses per element), next to its name
function priorHtml(job, el) {
  const prior = (job.priors || {})[el];
  return prior && prior.prior !== job.method ? ' <span class="prior">(' + esc(prior.prior) + ")</span>" : "";
}
function metricsHtml(job) {
  return Object.entries(job.metrics || {}).map(([el, m]) =>
    "<b>" + esc(el) + "</b>" + priorHtml(job, el) + ": " + Object.entries(m).filter(([k]) => ["residual", "frc_px", "psnr"].includes(k))
      .map(([k, v]) => esc(k) + " " + fmt(v)).join(", ")).join("<br>") + warningsHtml(job);
}
// the reconstruction's own doubts (e.g. a map not to be trusted), shown with the numbers they qualify
function warningsHtml(job) {
  const warnings = job.warnings || [];
  if (!warnings.length) return "";
  return '<ul class="warnings">' + warnings.map(w => "<li>&#9888; " + esc(w) + "</li>").join("") + "</ul>";
}
function mapsHtml(job) {
  if (job.status !== "succeeded") return "";
  return Object.keys(job.metrics || {}).map(el =>
    '<figure><img alt="' + esc(el) + '" data-element="' + esc(el) + '" src="' + API + "/reconstructions/" +
    esc(job.id) + "/maps/" + encodeURIComponent(el) + '.png" onload="this.dataset.loaded=this.naturalWidth">' +
    "<figcaption>" + esc(el) + "</figcaption></figure>").join("");
}
function rowHtml(job) {
  return "<td><code>" + esc(job.id.slice(0, 8)) + "</code></td><td><code>" + esc(job.run_uid.slice(0, 8)) +
    "</code></td><td>" + esc(job.method || "default") + "</td><td class=\\"status status-" + esc(job.status) +
    "\\">" + esc(job.status) + (job.error ? '<div class="error">' + esc(job.error) + "</div>" : "") +
    "</td><td><progress max=\\"1\\" value=\\"" + esc(job.progress) + "\\"></progress> " +
    Math.round(100 * job.progress) + " %<br><small>" + esc(job.stage) + "</small></td><td>" + metricsHtml(job) +
    "</td><td>" + mapsHtml(job) + "</td>";
}
async function refresh() {
  try {
    const jobs = (await (await fetch(API + "/reconstructions")).json()).reconstructions;
    const body = document.getElementById("jobs");
    for (const job of jobs) {
      let tr = document.getElementById("job-" + job.id);
      const key = job.status + ":" + job.progress;
      if (!tr) {
        tr = document.createElement("tr"); tr.id = "job-" + job.id; tr.dataset.jobId = job.id;
        body.appendChild(tr);
      }
      if (shown[job.id] !== key) { tr.innerHTML = rowHtml(job); tr.dataset.status = job.status; shown[job.id] = key; }
    }
    document.getElementById("info").textContent = jobs.length + " reconstruction(s), updated " +
      new Date().toLocaleTimeString();
    document.body.dataset.refreshed = "yes";
  } catch (err) {
    document.getElementById("info").textContent = "cannot reach the service: " + err;
  }
}
fetch(API + "/info").then(r => r.json()).then(i => {
  document.title = "nxsci " + i.version + " reconstructions";
});
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
