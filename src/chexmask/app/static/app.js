"use strict";
// Upload one file, show the overlay and summary, link the zip. No framework, no network beyond this server.
const $ = (id) => document.getElementById(id);
const fmt = (v, d = 2) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(d));

fetch("/api/info").then((r) => r.json()).then((info) => {
  const l = info.limits;
  $("limits").textContent = `Model ${info.model}; ${info.uncertainty_samples} uncertainty samples. ` +
    `Limits: ${(l.max_bytes / 1048576).toFixed(0)} MiB, ${(l.max_pixels / 1e6).toFixed(0)} megapixels, ` +
    `sides at least ${l.min_side} px.`;
  $("umax").textContent = fmt(info.overlay_vmax_px, 1);  // the overlay's fixed scale, as in segment --overlays
}).catch(() => {});

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("result").hidden = true;
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  $("error").hidden = true;
  if (!file) { showError("Choose a PNG, JPEG or DICOM file first."); return; }
  const body = new FormData();
  body.append("file", file);
  $("submit").disabled = true;
  $("status").textContent = "Segmenting...";
  try {
    const response = await fetch("/api/segment", { method: "POST", body });
    let data;
    try { data = await response.json(); } catch { data = { error: `server answered ${response.status}` }; }
    if (!response.ok) { showError(data.error || `server answered ${response.status}`); return; }
    show(data);
  } catch (err) {
    showError(`Upload failed: ${err}`);
  } finally {
    $("submit").disabled = false;
    $("status").textContent = "";
  }
});

// CTR, widths and areas; mm only when the file had a pixel spacing (DICOM), never guessed.
function measures(m) {
  if (!m) return "n/a";
  const len = (name) => m[`${name} (px)`] === null ? "n/a"
    : `${m[`${name} (px)`]} px` + (m[`${name} (mm)`] === null ? "" : ` (${fmt(m[`${name} (mm)`], 1)} mm)`);
  const area = (name) => m[`${name} (mm2)`] === null ? `${m[`${name} (px)`]} px`
    : `${fmt(m[`${name} (mm2)`] / 100, 1)} cm\u00b2`;
  const spacing = m["Row Spacing (mm)"] === null ? "no pixel spacing in the file: lengths in pixels only"
    : `pixel spacing ${m["Row Spacing (mm)"]} x ${m["Column Spacing (mm)"]} mm`;
  return `CTR ${fmt(m.CTR, 3)}; heart width ${len("Heart Width")}, thorax width ${len("Thorax Width")}; ` +
    `areas: heart ${area("Heart Area")}, right lung ${area("Right Lung Area")}, left lung ${area("Left Lung Area")}; ${spacing}`;
}

function show(r) {
  $("overlay").src = r.overlay;
  $("image-id").textContent = r.image_id;
  $("size").textContent = `${r.width} x ${r.height} px (${r.kind.toUpperCase()})`;
  $("flag").textContent = r.quality.flag;
  $("flag").className = `flag ${r.quality.flag}`;
  $("reason").textContent = r.quality.reason;
  const e = r.quality.estimated_dice;
  $("estimate").textContent = `lungs ${fmt(e.lungs, 3)}, heart ${fmt(e.heart, 3)}` +
    (r.node_error_radius_median === null ? "" : `; median node error radius ${fmt(r.node_error_radius_median, 1)} px (90 %, circles on the image)`);
  const o = r.organ_uncertainty;
  $("uncertainty").textContent = o
    ? `mean ${fmt(r.uncertainty)} px; right lung ${fmt(o.right_lung)}, left lung ${fmt(o.left_lung)}, heart ${fmt(o.heart)}`
    : "off";
  $("measures").textContent = measures(r.measures);
  $("seconds").textContent = `${fmt(r.seconds, 2)} s`;
  $("download").href = r.download;
  $("download").setAttribute("download", `${r.image_id}_chexmask.zip`);
  $("result").hidden = false;
}
