"use strict";
/* The pgsearch map page: a 2-D projection of a dataset's items drawn on a canvas, with rectangle,
 * lasso and cluster selections that come out as a pgsearch query expression.
 *
 * Design notes (why it is built this way):
 * - Points are pixels in one ImageData buffer, not DOM nodes and not canvas paths: writing a few
 *   32-bit words per point and one putImageData draws 100,000 points in a few milliseconds.
 *   Everything that changes while the mouse moves (rubber band, lasso, hover ring) is on a
 *   second, transparent canvas on top, so a drag never redraws the points.
 * - Hover uses a uniform grid over the data bounds (counting sort into cells, built once), so a
 *   mousemove looks at the few cells under the cursor instead of every point.
 * - The selection is computed here with the rule the database applies to the expression shown,
 *   so the listed items are the ones the query selects:
 *     * numbers are written with at most 15 significant digits and no exponent, and the page
 *       selects with the numbers as written (Number(text)), not with the mouse's coordinates;
 *     * the query language compares x and y as PostgreSQL numerics, and a double precision
 *       column becomes numeric with 15 significant digits (float8_numeric uses %.15g), so a
 *       rectangle tests x.toPrecision(15); two decimals of at most 15 digits keep their order
 *       as doubles, so comparing the doubles is exact;
 *     * a lasso is inside(x, y, [...]), PostgreSQL's point <@ polygon on the stored doubles:
 *       the nonzero winding rule (see insidePolygon).
 * - Every text that came from the data reaches the DOM through textContent, never innerHTML.
 */
(function () {
  const started = performance.now();
  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("map-config").textContent);
  const data = JSON.parse($("map-data").textContent);

  const n = data.ids.length;
  const ids = data.ids; // ascending (the page is written in id order), so selections are too
  const xs = Float64Array.from(data.x);
  const ys = Float64Array.from(data.y);
  const filenames = data.filename;
  const labels = data.label || null;
  const NONE = -2147483648; // cluster NULL: not clustered
  const NOISE = -1;
  const clusters = new Int32Array(n);
  for (let i = 0; i < n; i++) clusters[i] = data.cluster[i] === null ? NONE : data.cluster[i];

  const MAX_QUERY_LENGTH = config.maxQueryLength;
  const MAX_LIMIT = config.maxLimit;
  const DEFAULT_LIMIT = config.defaultLimit;
  const PANEL_THUMBS = 200;
  const MAX_LASSO_VERTICES = 100; // keeps a lasso's expression far below the query length limit
  const PICK_RADIUS = 6; // CSS pixels

  // ---- colours: one 32-bit RGBA word per palette slot, in ImageData's byte order ----
  const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  function pack(r, g, b) {
    return (LITTLE_ENDIAN ? ((255 << 24) | (b << 16) | (g << 8) | r) : ((r << 24) | (g << 16) | (b << 8) | 255)) >>> 0;
  }
  function rgbOf(hex) {
    const v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }
  const palette = config.palette;
  const P = palette.length;
  const SLOT_NOISE = P;
  const SLOT_NONE = P + 1;
  const slotHex = palette.concat([config.noiseColour, config.noneColour]);
  const solid = new Uint32Array(slotHex.length);
  const faded = new Uint32Array(slotHex.length); // unselected points while there is a selection
  slotHex.forEach((hex, s) => {
    const [r, g, b] = rgbOf(hex);
    solid[s] = pack(r, g, b);
    faded[s] = pack(...[r, g, b].map((v) => Math.round(v + (255 - v) * 0.72)));
  });
  const BACKGROUND = pack(255, 255, 255);
  const OUTLINE = pack(24, 24, 27);
  function slotOfCluster(c) {
    if (c === NONE) return SLOT_NONE;
    if (c === NOISE) return SLOT_NOISE;
    return ((c % P) + P) % P;
  }
  const slots = new Uint8Array(n);
  for (let i = 0; i < n; i++) slots[i] = slotOfCluster(clusters[i]);

  // Draw order: noise and unclustered first (underneath), then the clusters.
  const order = new Int32Array(n);
  let firstClustered = 0;
  for (let i = 0; i < n; i++) if (slots[i] >= P) order[firstClustered++] = i;
  for (let i = 0, k = firstClustered; i < n; i++) if (slots[i] < P) order[k++] = i;

  // ---- data bounds and the view (CSS pixels; y grows upwards on screen) ----
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    if (xs[i] < minX) minX = xs[i];
    if (xs[i] > maxX) maxX = xs[i];
    if (ys[i] < minY) minY = ys[i];
    if (ys[i] > maxY) maxY = ys[i];
  }
  if (n === 0) { minX = minY = -1; maxX = maxY = 1; }

  const plot = $("plot");
  const canvas = $("points");
  const overlay = $("overlay");
  const ctx = canvas.getContext("2d");
  const octx = overlay.getContext("2d");
  const tooltip = $("tooltip");
  let W = 1, H = 1, dpr = 1;
  let scale = 1, fitScale = 1, cx = 0, cy = 0;

  const toScreenX = (x) => (x - cx) * scale + W / 2;
  const toScreenY = (y) => H / 2 - (y - cy) * scale;
  const toDataX = (sx) => (sx - W / 2) / scale + cx;
  const toDataY = (sy) => cy - (sy - H / 2) / scale;

  function resize() {
    const box = plot.getBoundingClientRect();
    W = Math.max(1, Math.floor(box.width));
    H = Math.max(1, Math.floor(box.height));
    dpr = window.devicePixelRatio || 1;
    for (const c of [canvas, overlay]) {
      c.width = Math.max(1, Math.round(W * dpr));
      c.height = Math.max(1, Math.round(H * dpr));
      c.style.width = W + "px";
      c.style.height = H + "px";
    }
  }

  function fit() {
    const dx = maxX - minX || Math.abs(maxX) || 1;
    const dy = maxY - minY || Math.abs(maxY) || 1;
    fitScale = Math.min(W / dx, H / dy) * 0.94;
    scale = fitScale;
    cx = (minX + maxX) / 2;
    cy = (minY + maxY) / 2;
  }

  // ---- uniform grid index for hovering ----
  const G = Math.max(1, Math.ceil(Math.sqrt(n / 2)));
  const cellW = (maxX - minX) / G || 1;
  const cellH = (maxY - minY) / G || 1;
  const cellStart = new Int32Array(G * G + 1);
  const cellItems = new Int32Array(n);
  const cellCol = (x) => Math.min(G - 1, Math.max(0, Math.floor((x - minX) / cellW)));
  const cellRow = (y) => Math.min(G - 1, Math.max(0, Math.floor((y - minY) / cellH)));
  function buildGrid() {
    const cellOf = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      cellOf[i] = cellRow(ys[i]) * G + cellCol(xs[i]);
      cellStart[cellOf[i] + 1]++;
    }
    for (let k = 0; k < G * G; k++) cellStart[k + 1] += cellStart[k];
    const fill = cellStart.slice(0, G * G);
    for (let i = 0; i < n; i++) cellItems[fill[cellOf[i]]++] = i;
  }

  /** The point nearest to the screen position within `radius` CSS pixels, or -1. */
  function pick(sx, sy, radius) {
    if (n === 0) return -1;
    const x = toDataX(sx), y = toDataY(sy), r = radius / scale;
    const c0 = cellCol(x - r), c1 = cellCol(x + r), r0 = cellRow(y - r), r1 = cellRow(y + r);
    let best = -1, bestD = r * r;
    for (let row = r0; row <= r1; row++) {
      for (let col = c0; col <= c1; col++) {
        const k = row * G + col;
        for (let j = cellStart[k]; j < cellStart[k + 1]; j++) {
          const i = cellItems[j];
          const ddx = xs[i] - x, ddy = ys[i] - y, d = ddx * ddx + ddy * ddy;
          if (d <= bestD) { bestD = d; best = i; } // ties: the later point, drawn on top
        }
      }
    }
    return best;
  }

  // ---- drawing ----
  let image = null, pixels = null;
  let selected = new Int32Array(0); // indices of the selected points, ascending
  const mask = new Uint8Array(n);

  function square(px, py, s, colour, Wp, Hp) {
    let x0 = px, y0 = py, x1 = px + s, y1 = py + s;
    if (x1 <= 0 || y1 <= 0 || x0 >= Wp || y0 >= Hp) return;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > Wp) x1 = Wp;
    if (y1 > Hp) y1 = Hp;
    for (let y = y0; y < y1; y++) {
      const row = y * Wp;
      for (let x = x0; x < x1; x++) pixels[row + x] = colour;
    }
  }

  function drawPoints() {
    const Wp = canvas.width, Hp = canvas.height;
    if (!image || image.width !== Wp || image.height !== Hp) {
      image = ctx.createImageData(Wp, Hp);
      pixels = new Uint32Array(image.data.buffer);
    }
    pixels.fill(BACKGROUND);
    // Device pixels: px = x * k + ox, py = oy - y * k.
    const k = scale * dpr, ox = (W * dpr) / 2 - cx * k, oy = (H * dpr) / 2 + cy * k;
    const grow = Math.min(3, Math.max(1, Math.sqrt(scale / fitScale)));
    const size = Math.max(1, Math.round((n > 50000 ? 2 : n > 5000 ? 3 : 4) * dpr * grow));
    const small = Math.max(1, size - Math.max(1, Math.round(dpr)));
    const colours = selected.length ? faded : solid;
    for (let j = 0; j < n; j++) {
      const i = order[j], s = j < firstClustered ? small : size;
      square(Math.floor(xs[i] * k + ox - s / 2), Math.floor(oy - ys[i] * k - s / 2), s, colours[slots[i]], Wp, Hp);
    }
    // The selection on top in full colour, outlined: every outline first, so that in a dense
    // cluster the outlines do not cover the neighbouring points' colours.
    const ring = Math.max(1, Math.round(dpr));
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < selected.length; j++) {
        const i = selected[j];
        const px = Math.floor(xs[i] * k + ox - size / 2), py = Math.floor(oy - ys[i] * k - size / 2);
        if (pass === 0) square(px - ring, py - ring, size + 2 * ring, OUTLINE, Wp, Hp);
        else square(px, py, size, solid[slots[i]], Wp, Hp);
      }
    }
    ctx.putImageData(image, 0, 0);
  }

  let drag = null; // {mode: "pan"|"rect"|"lasso"|"click", ...} while a button is down
  let hovered = -1;

  function drawOverlay() {
    octx.setTransform(dpr, 0, 0, dpr, 0, 0);
    octx.clearRect(0, 0, W, H);
    octx.lineWidth = 1.5;
    octx.setLineDash([5, 4]);
    octx.strokeStyle = "#18181b";
    for (const part of parts) {
      if (part.kind === "rect") {
        const [a, b, c, d] = part.v;
        octx.strokeRect(toScreenX(a), toScreenY(d), (b - a) * scale, (d - c) * scale);
      } else if (part.kind === "lasso") {
        octx.beginPath();
        for (let i = 0; i < part.v.length; i += 2) octx.lineTo(toScreenX(part.v[i]), toScreenY(part.v[i + 1]));
        octx.closePath();
        octx.stroke();
      }
    }
    octx.setLineDash([]);
    octx.strokeStyle = "#2563eb";
    octx.fillStyle = "#2563eb22";
    if (drag && drag.mode === "rect") {
      const x = Math.min(drag.x0, drag.x1), y = Math.min(drag.y0, drag.y1);
      const w = Math.abs(drag.x1 - drag.x0), h = Math.abs(drag.y1 - drag.y0);
      octx.fillRect(x, y, w, h);
      octx.strokeRect(x, y, w, h);
    } else if (drag && drag.mode === "lasso") {
      octx.beginPath();
      for (const [x, y] of drag.path) octx.lineTo(x, y);
      octx.closePath();
      octx.fill();
      octx.stroke();
    }
    if (hovered >= 0) {
      octx.beginPath();
      octx.arc(toScreenX(xs[hovered]), toScreenY(ys[hovered]), 5, 0, 2 * Math.PI);
      octx.lineWidth = 2;
      octx.strokeStyle = "#18181b";
      octx.stroke();
    }
  }

  let framePending = 0, pointsDirty = false;
  function requestDraw(points) {
    pointsDirty = pointsDirty || points;
    if (framePending) return;
    framePending = requestAnimationFrame(() => {
      framePending = 0;
      if (pointsDirty) drawPoints();
      pointsDirty = false;
      drawOverlay();
    });
  }

  // ---- numbers as the query language reads them ----
  function intDigits(v) {
    return v === 0 ? 1 : Math.floor(Math.log10(Math.abs(v))) + 1;
  }
  /** `v` as a plain decimal literal: `decimals` places at most, 15 significant digits at most,
   * never exponent notation; within the language's range (0, or 1e-18 to 1e18 in size). */
  function formatNumber(v, decimals) {
    if (!Number.isFinite(v)) throw new RangeError("not a finite number: " + v);
    if (Math.abs(v) > 1e18) v = Math.sign(v) * 1e18;
    const places = Math.max(0, Math.min(100, decimals, 15 - intDigits(v)));
    let text = v.toFixed(places);
    if (text.includes(".")) text = text.replace(/0+$/, "").replace(/\.$/, "");
    if (text === "-0" || Math.abs(Number(text)) < 1e-18) text = "0";
    return text;
  }
  /** Decimal places that resolve a tenth of a screen pixel at the current zoom. */
  const viewDecimals = () => Math.max(0, Math.ceil(Math.log10(scale)) + 1);
  const FULL = Infinity; // API and deep links: 15 significant digits

  // x and y as PostgreSQL turns double precision into numeric (15 significant digits), made once.
  let xr = null, yr = null;
  function rounded() {
    if (xr === null) {
      xr = new Float64Array(n);
      yr = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        xr[i] = Number(xs[i].toPrecision(15));
        yr[i] = Number(ys[i].toPrecision(15));
      }
    }
  }

  /** PostgreSQL's point <@ polygon (point_inside in geo_ops.c): the signed crossings of a ray
   * from the point must not sum to zero, the nonzero winding rule. For a simple outline this is
   * the even-odd rule; where a freehand lasso crosses itself, an area it winds around twice is
   * inside as well. (PostgreSQL also counts points within 1e-6 of the outline as inside.) */
  function insidePolygon(px, py, v) {
    let winding = 0;
    const m = v.length;
    for (let i = 0, j = m - 2; i < m; j = i, i += 2) {
      const x1 = v[j], y1 = v[j + 1], x2 = v[i], y2 = v[i + 1]; // the edge from vertex j to i
      const side = (x2 - x1) * (py - y1) - (px - x1) * (y2 - y1); // > 0: the point is left of it
      if (y1 <= py) {
        if (y2 > py && side > 0) winding++; // an upward edge passing right of the point
      } else if (y2 <= py && side < 0) winding--; // a downward one
    }
    return winding !== 0;
  }

  // ---- the selection: a union of parts ----
  let parts = []; // {kind: "rect", text: [x0, x1, y0, y1], v}, {kind: "lasso", text: [x, y, ...], v}, {kind: "cluster", ids}

  function rectPart(x0, y0, x1, y1, decimals) {
    const text = [Math.min(x0, x1), Math.max(x0, x1), Math.min(y0, y1), Math.max(y0, y1)].map((v) =>
      formatNumber(v, decimals),
    );
    return { kind: "rect", text, v: text.map(Number) };
  }

  function lassoPart(vertices, decimals) {
    const text = [];
    for (const [x, y] of vertices) {
      const tx = formatNumber(x, decimals), ty = formatNumber(y, decimals);
      const k = text.length;
      if (k && text[k - 2] === tx && text[k - 1] === ty) continue; // the same vertex once rounded
      text.push(tx, ty);
    }
    if (text.length > 2 && text[0] === text[text.length - 2] && text[1] === text[text.length - 1]) text.length -= 2;
    if (text.length < 6) return null;
    return { kind: "lasso", text, v: Float64Array.from(text, Number) };
  }

  function partExpression(part) {
    const t = part.text;
    if (part.kind === "rect") return `x >= ${t[0]} and x <= ${t[1]} and y >= ${t[2]} and y <= ${t[3]}`;
    if (part.kind === "lasso") {
      const vertices = [];
      for (let i = 0; i < t.length; i += 2) vertices.push(`[${t[i]}, ${t[i + 1]}]`);
      return `inside(x, y, [${vertices.join(", ")}])`;
    }
    return part.ids.length === 1 ? `cluster == ${part.ids[0]}` : `cluster in (${part.ids.join(", ")})`;
  }

  function expression() {
    if (parts.length === 0) return "";
    if (parts.length === 1) return partExpression(parts[0]);
    return parts.map((part) => "(" + partExpression(part) + ")").join(" or ");
  }

  /** POSIX shell quoting as Python's shlex.quote decides, with ' written as '\''. */
  function shellQuote(text) {
    if (text === "") return "''";
    if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  function command() {
    const query = expression();
    if (!query) return "";
    const group = $("group-name").value.trim() || "NAME";
    let line = `pgsearch query ${shellQuote(query)} --dataset ${shellQuote(config.dataset)}`;
    if (config.target === "shape") line += " --shapes";
    // --add-to-group acts on the rows returned, DEFAULT_LIMIT unless told.
    if (selected.length > DEFAULT_LIMIT) line += ` --limit ${Math.min(selected.length, MAX_LIMIT)}`;
    return line + ` --add-to-group ${shellQuote(group)}`;
  }

  function recompute() {
    mask.fill(0);
    for (const part of parts) {
      if (part.kind === "cluster") {
        const wanted = new Set(part.ids);
        for (let i = 0; i < n; i++) if (wanted.has(clusters[i])) mask[i] = 1;
        continue;
      }
      if (part.kind === "rect") {
        rounded();
        const [a, b, c, d] = part.v;
        for (let i = 0; i < n; i++) if (xr[i] >= a && xr[i] <= b && yr[i] >= c && yr[i] <= d) mask[i] = 1;
      } else {
        const v = part.v;
        let a = Infinity, b = -Infinity, c = Infinity, d = -Infinity; // bounding box first
        for (let i = 0; i < v.length; i += 2) {
          a = Math.min(a, v[i]); b = Math.max(b, v[i]);
          c = Math.min(c, v[i + 1]); d = Math.max(d, v[i + 1]);
        }
        // inside() reads x and y as stored, in double precision.
        for (let i = 0; i < n; i++) {
          if (xs[i] >= a && xs[i] <= b && ys[i] >= c && ys[i] <= d && insidePolygon(xs[i], ys[i], v)) mask[i] = 1;
        }
      }
    }
    let count = 0;
    for (let i = 0; i < n; i++) count += mask[i];
    selected = new Int32Array(count);
    for (let i = 0, k = 0; i < n; i++) if (mask[i]) selected[k++] = i;
    renderSelection();
    writeHash();
    requestDraw(true);
  }

  function setParts(part, add) {
    if (part === null) return;
    parts = add ? parts.concat([part]) : [part];
    recompute();
  }

  function selectCluster(c, add) {
    if (!add) {
      parts = [{ kind: "cluster", ids: [c] }];
    } else {
      // One cluster part holds every shift-clicked cluster: `cluster in (...)`; shift-clicking a
      // selected cluster drops it.
      const part = parts.find((p) => p.kind === "cluster");
      if (!part) parts = parts.concat([{ kind: "cluster", ids: [c] }]);
      else if (part.ids.includes(c)) {
        part.ids = part.ids.filter((v) => v !== c);
        if (part.ids.length === 0) parts = parts.filter((p) => p !== part);
      } else part.ids = part.ids.concat([c]).sort((a, b) => a - b);
    }
    recompute();
  }

  function clearSelection() {
    parts = [];
    recompute();
  }

  // ---- the side panel ----
  let thumbs = null; // parsed on first use: the first draw does not wait for it
  function thumbOf(i) {
    if (thumbs === null) thumbs = JSON.parse($("map-thumbs").textContent);
    const b64 = thumbs[i];
    return b64 ? "data:image/jpeg;base64," + b64 : null;
  }

  function describe(i) {
    const bits = [];
    if (labels && labels[i] !== null && labels[i] !== undefined) bits.push("label " + labels[i]);
    bits.push("id " + ids[i]);
    const c = clusters[i];
    bits.push(c === NONE ? "no cluster" : c === NOISE ? "noise" : "cluster " + c);
    return bits.join(" \u00b7 ");
  }

  const legendEntries = new Map();
  function buildLegend() {
    const counts = new Map();
    for (let i = 0; i < n; i++) counts.set(clusters[i], (counts.get(clusters[i]) || 0) + 1);
    const rank = (c) => (c === NONE ? 2 : c === NOISE ? 1 : 0);
    const keys = Array.from(counts.keys()).sort((a, b) => rank(a) - rank(b) || a - b);
    const legend = $("legend");
    if (keys.length === 0) legend.textContent = "no points";
    for (const c of keys) {
      const entry = document.createElement("div");
      entry.className = "entry";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = slotHex[slotOfCluster(c)];
      const name = document.createElement("span");
      name.textContent = c === NONE ? "no cluster" : c === NOISE ? "noise (-1)" : "cluster " + c;
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = counts.get(c).toLocaleString("en-US");
      entry.append(swatch, name, count);
      if (c === NONE) {
        entry.classList.add("inert"); // `cluster` is missing there: no expression selects these
        entry.title = "not clustered";
      } else {
        entry.setAttribute("role", "button");
        entry.tabIndex = 0;
        entry.title = "click: select this cluster; shift-click: add it";
        entry.addEventListener("click", (e) => selectCluster(c, e.shiftKey));
        entry.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); selectCluster(c, e.shiftKey); }
        });
      }
      legendEntries.set(c, entry);
      legend.append(entry);
    }
  }

  function renderSelection() {
    const query = expression();
    $("selection-count").textContent = String(selected.length);
    $("expression").textContent = query;
    $("command").textContent = command();
    $("selection-ids").textContent = Array.from(selected, (i) => ids[i]).join(",");
    const notes = [];
    if (query.length > MAX_QUERY_LENGTH) {
      notes.push(`The expression is ${query.length} characters; pgsearch query takes at most ` +
        `${MAX_QUERY_LENGTH}: select in fewer parts, or with a simpler lasso.`);
    }
    if (selected.length > MAX_LIMIT) notes.push(`--limit is at most ${MAX_LIMIT}: the command adds the first ${MAX_LIMIT}.`);
    if (query) notes.push("x, y and cluster in the expression are those of the dataset's latest projection run.");
    $("notes").textContent = notes.join(" ");
    const selectedClusters = new Set(parts.filter((p) => p.kind === "cluster").flatMap((p) => p.ids));
    for (const [c, entry] of legendEntries) entry.classList.toggle("selected", selectedClusters.has(c));
    const grid = $("thumbs");
    grid.replaceChildren();
    for (let j = 0; j < Math.min(PANEL_THUMBS, selected.length); j++) {
      const i = selected[j];
      const figure = document.createElement("figure");
      const src = thumbOf(i);
      if (src) {
        const img = document.createElement("img");
        img.src = src;
        img.alt = filenames[i];
        figure.append(img);
      } else {
        const missing = document.createElement("div");
        missing.className = "missing";
        missing.textContent = "no thumbnail";
        figure.append(missing);
      }
      const caption = document.createElement("figcaption");
      caption.textContent = filenames[i];
      figure.title = filenames[i] + "\n" + describe(i);
      figure.append(caption);
      grid.append(figure);
    }
  }

  function showTooltip(i, sx, sy) {
    if (i < 0) { tooltip.style.display = "none"; return; }
    tooltip.replaceChildren();
    const src = thumbOf(i);
    if (src) {
      const img = document.createElement("img");
      img.src = src;
      img.alt = "";
      tooltip.append(img);
    }
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = filenames[i];
    const meta = document.createElement("div");
    meta.textContent = describe(i);
    tooltip.append(name, meta);
    tooltip.style.display = "block";
    const w = tooltip.offsetWidth, h = tooltip.offsetHeight;
    tooltip.style.left = (sx + 14 + w > W ? Math.max(0, sx - 14 - w) : sx + 14) + "px";
    tooltip.style.top = (sy + 14 + h > H ? Math.max(0, sy - 14 - h) : sy + 14) + "px";
  }

  // ---- deep links: #select=rect:x0,y0,x1,y1;lasso:x1,y1,x2,y2,...;cluster:3,5 ----
  function encodePart(part) {
    if (part.kind === "rect") return "rect:" + [part.text[0], part.text[2], part.text[1], part.text[3]].join(",");
    if (part.kind === "lasso") return "lasso:" + part.text.join(",");
    return "cluster:" + part.ids.join(",");
  }
  let writtenHash = "";
  function writeHash() {
    writtenHash = parts.length ? "#select=" + parts.map(encodePart).join(";") : "";
    try {
      history.replaceState(null, "", writtenHash || location.pathname + location.search);
    } catch (e) {
      // Some browsers refuse history changes on file:// pages; the link is then not updated.
    }
  }
  function readHash() {
    const match = /^#select=(.*)$/.exec(location.hash);
    if (!match || location.hash === writtenHash) return;
    let text;
    try { text = decodeURIComponent(match[1]); } catch (e) { return; }
    const found = [];
    for (const piece of text.split(";")) {
      const colon = piece.indexOf(":");
      const kind = piece.slice(0, colon);
      const values = piece.slice(colon + 1).split(",").map((v) => (v.trim() === "" ? NaN : Number(v)));
      if (colon < 0 || values.some((v) => !Number.isFinite(v))) continue;
      if (kind === "rect" && values.length === 4) found.push(rectPart(values[0], values[1], values[2], values[3], FULL));
      else if (kind === "lasso" && values.length >= 6 && values.length % 2 === 0) {
        const vertices = [];
        for (let i = 0; i < values.length; i += 2) vertices.push([values[i], values[i + 1]]);
        const part = lassoPart(vertices, FULL);
        if (part) found.push(part);
      } else if (kind === "cluster" && values.every(Number.isInteger)) {
        const list = Array.from(new Set(values)).sort((a, b) => a - b);
        const existing = found.find((p) => p.kind === "cluster");
        if (existing) existing.ids = Array.from(new Set(existing.ids.concat(list))).sort((a, b) => a - b);
        else found.push({ kind: "cluster", ids: list });
      }
    }
    parts = found;
    recompute();
  }

  // ---- mouse and keys ----
  let tool = "rect";
  let spaceHeld = false;
  function setTool(name) {
    tool = name;
    for (const b of document.querySelectorAll("[data-tool]")) b.classList.toggle("active", b.dataset.tool === tool);
    plot.classList.toggle("pan", tool === "pan" || spaceHeld);
  }
  const local = (e) => {
    const box = plot.getBoundingClientRect();
    return [e.clientX - box.left, e.clientY - box.top];
  };

  /** A freehand path thinned with Ramer-Douglas-Peucker until it has few enough vertices. */
  function simplify(path) {
    let tolerance = 1, kept = path;
    while (kept.length > MAX_LASSO_VERTICES) {
      const keep = new Uint8Array(path.length);
      keep[0] = keep[path.length - 1] = 1;
      const stack = [[0, path.length - 1]];
      while (stack.length) {
        const [a, b] = stack.pop();
        const [ax, ay] = path[a], [bx, by] = path[b];
        const dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
        let best = -1, bestD = tolerance * tolerance;
        for (let i = a + 1; i < b; i++) {
          const [px, py] = path[i];
          const t = len2 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2)) : 0;
          const ex = ax + t * dx - px, ey = ay + t * dy - py, d = ex * ex + ey * ey;
          if (d > bestD) { bestD = d; best = i; }
        }
        if (best >= 0) { keep[best] = 1; stack.push([a, best], [best, b]); }
      }
      kept = path.filter((_, i) => keep[i]);
      tolerance *= 1.5;
    }
    return kept;
  }

  plot.addEventListener("pointerdown", (e) => {
    if (drag) return;
    const [sx, sy] = local(e);
    const panning = e.button === 1 || (e.button === 0 && (spaceHeld || tool === "pan"));
    if (!panning && e.button !== 0) return;
    e.preventDefault(); // no middle-button autoscroll, no text selection
    try {
      plot.setPointerCapture(e.pointerId); // a drag that leaves the plot still ends here
    } catch (err) {
      // a synthetic event's pointer cannot be captured; nothing is lost but the capture
    }
    showTooltip(-1);
    hovered = -1;
    if (panning) {
      drag = { mode: "pan", x: sx, y: sy };
      plot.classList.add("panning");
    } else if (tool === "rect") drag = { mode: "rect", x0: sx, y0: sy, x1: sx, y1: sy, shift: e.shiftKey };
    else if (tool === "lasso") drag = { mode: "lasso", path: [[sx, sy]], shift: e.shiftKey };
    else drag = { mode: "click", x0: sx, y0: sy, shift: e.shiftKey };
    requestDraw(false);
  });

  plot.addEventListener("pointermove", (e) => {
    const [sx, sy] = local(e);
    if (!drag) {
      const i = pick(sx, sy, PICK_RADIUS);
      if (i !== hovered) { hovered = i; requestDraw(false); }
      showTooltip(i, sx, sy);
      return;
    }
    if (drag.mode === "pan") {
      cx -= (sx - drag.x) / scale;
      cy += (sy - drag.y) / scale;
      drag.x = sx;
      drag.y = sy;
      requestDraw(true);
    } else if (drag.mode === "rect") {
      drag.x1 = sx;
      drag.y1 = sy;
      requestDraw(false);
    } else if (drag.mode === "lasso") {
      const [lx, ly] = drag.path[drag.path.length - 1];
      if (Math.hypot(sx - lx, sy - ly) >= 3) { drag.path.push([sx, sy]); requestDraw(false); }
    }
  });

  function endDrag(e) {
    if (!drag) return;
    const d = drag;
    drag = null;
    plot.classList.remove("panning");
    const [sx, sy] = local(e);
    if (d.mode === "rect") {
      if (Math.abs(sx - d.x0) < 3 && Math.abs(sy - d.y0) < 3) {
        if (!d.shift) clearSelection(); // a click on the map clears
      } else {
        setParts(rectPart(toDataX(d.x0), toDataY(d.y0), toDataX(sx), toDataY(sy), viewDecimals()), d.shift);
      }
    } else if (d.mode === "lasso") {
      if (d.path.length >= 3) {
        const vertices = simplify(d.path).map(([px, py]) => [toDataX(px), toDataY(py)]);
        setParts(lassoPart(vertices, viewDecimals()), d.shift);
      }
    } else if (d.mode === "click" && Math.abs(sx - d.x0) < 4 && Math.abs(sy - d.y0) < 4) {
      const i = pick(sx, sy, PICK_RADIUS);
      if (i >= 0 && clusters[i] !== NONE) selectCluster(clusters[i], d.shift);
      else if (!d.shift) clearSelection();
    }
    requestDraw(false);
  }
  plot.addEventListener("pointerup", endDrag);
  plot.addEventListener("pointercancel", endDrag);
  plot.addEventListener("pointerleave", () => {
    if (!drag && hovered >= 0) { hovered = -1; showTooltip(-1); requestDraw(false); }
  });
  plot.addEventListener("auxclick", (e) => e.preventDefault());

  plot.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      const [sx, sy] = local(e);
      const x = toDataX(sx), y = toDataY(sy); // stays under the cursor
      const step = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : 0.0015;
      scale = Math.min(fitScale * 1e6, Math.max(fitScale / 8, scale * Math.exp(-e.deltaY * step)));
      cx = x - (sx - W / 2) / scale;
      cy = y + (sy - H / 2) / scale;
      showTooltip(-1);
      hovered = -1;
      requestDraw(true);
    },
    { passive: false },
  );

  const typing = (e) => e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
  window.addEventListener("keydown", (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key.toLowerCase();
    if (key === " ") {
      e.preventDefault();
      spaceHeld = true;
      plot.classList.add("pan");
    } else if (key === "r") setTool("rect");
    else if (key === "l") setTool("lasso");
    else if (key === "c") setTool("cluster");
    else if (key === "p") setTool("pan");
    else if (key === "f") { fit(); requestDraw(true); }
    else if (key === "escape") clearSelection();
  });
  window.addEventListener("keyup", (e) => {
    if (e.key === " ") { spaceHeld = false; plot.classList.toggle("pan", tool === "pan"); }
  });
  for (const b of document.querySelectorAll("[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("fit").addEventListener("click", () => { fit(); requestDraw(true); });
  $("clear").addEventListener("click", clearSelection);
  $("group-name").addEventListener("input", () => { $("command").textContent = command(); });
  $("copy").addEventListener("click", async () => {
    const text = command();
    if (!text) return;
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      // No async clipboard (older browsers, some file:// pages): copy from a selected textarea.
      const area = document.createElement("textarea");
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    $("copied").textContent = "copied";
    setTimeout(() => { $("copied").textContent = ""; }, 1500);
  });
  window.addEventListener("resize", () => {
    const x = cx, y = cy, ratio = scale / fitScale;
    resize();
    fit();
    scale = fitScale * ratio;
    cx = x;
    cy = y;
    requestDraw(true);
  });
  window.addEventListener("hashchange", readHash);

  // ---- the API, for tests and power users (data coordinates; add = true is a shift-add) ----
  const api = {
    ready: false,
    drawMs: null,
    loadMs: null,
    selectRect: (x0, y0, x1, y1, add = false) => { setParts(rectPart(x0, y0, x1, y1, FULL), add); return api.selection(); },
    selectLasso: (vertices, add = false) => { setParts(lassoPart(vertices, FULL), add); return api.selection(); },
    selectCluster: (c, add = false) => { selectCluster(c, add); return api.selection(); },
    clear: () => { clearSelection(); return api.selection(); },
    selection: () => Array.from(selected, (i) => ids[i]),
    expression,
    command,
    fit: () => { fit(); requestDraw(true); },
    // The view: data coordinates <-> CSS pixels from the plot's top left corner.
    toScreen: (x, y) => [toScreenX(x), toScreenY(y)],
    toData: (sx, sy) => [toDataX(sx), toDataY(sy)],
  };
  window.pgsearchMap = api;

  // ---- first draw: synchronous, so a screenshot taken at the load event shows the points ----
  setTool("rect");
  resize();
  fit();
  const drawStart = performance.now();
  drawPoints();
  drawOverlay();
  api.drawMs = performance.now() - drawStart;
  buildGrid();
  buildLegend();
  renderSelection();
  readHash();
  api.loadMs = performance.now() - started;
  api.ready = true;
  document.body.dataset.drawMs = api.drawMs.toFixed(1);
  document.body.dataset.loadMs = api.loadMs.toFixed(1);
  document.body.dataset.ready = "true";
})();
