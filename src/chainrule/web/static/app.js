// chainrule playground: plain JavaScript over the JSON API (docs/playground.md). Every number
// is computed by the server (the library's own functions); this file only draws it.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const state = { models: [], ladder: false, limits: {}, view: "next-word" };
const VIEWS = ["next-word", "surprisal", "attention", "bpe", "generate", "ladder"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.setAttribute("style", v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

const fmtP = (p) => (p >= 0.0001 || p === 0 ? p.toFixed(4) : p.toExponential(2));
const fmtBits = (b) => (b === null || b === undefined ? "—" : b.toFixed(2));
const showTok = (t) => (t === "" ? "∅" : t.replace(/ /g, "␣").replace(/\n/g, "⏎"));

async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  let data;
  try { data = await res.json(); } catch (e) { data = { error: `the server answered ${res.status}` }; }
  if (!res.ok) throw new Error(data.error || `the server answered ${res.status}`);
  return data;
}

function setError(view, message) {
  const box = $(`#view-${view} .error`);
  box.textContent = message || "";
  box.hidden = !message;
}

function modelsFor(view) {
  const checked = new Set($$("#models input:checked").map((i) => i.value));
  return state.models.filter((m) => checked.has(m.name));
}

function cannotNotes(view, models) {
  return models.filter((m) => !m.views[view]).map((m) =>
    el("div", { class: "panel cannot", "data-model": m.name },
      el("h3", {}, m.name, el("small", { text: ` ${m.family}` })),
      el("p", { class: "why", text: m.why_not[view] })));
}

function panelHead(m, extra) {
  return el("h3", {}, m.name, el("small", { text: ` ${m.family} · ${m.vocab_size.toLocaleString()} tokens` }), extra || null);
}

// -- tabs (arrow keys move between them) ----------------------------------------------------
function showView(view) {
  if (!VIEWS.includes(view)) view = "next-word";
  state.view = view;
  for (const v of VIEWS) {
    const tab = $(`#tab-${v}`);
    tab.setAttribute("aria-selected", String(v === view));
    tab.tabIndex = v === view ? 0 : -1;
    $(`#view-${v}`).hidden = v !== view;
  }
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
  if (view === "next-word") nextWord();
  if (view === "ladder") ladder();
}

$("#tabs").addEventListener("click", (e) => {
  const tab = e.target.closest("[role=tab]");
  if (tab) showView(tab.dataset.view);
});
$("#tabs").addEventListener("keydown", (e) => {
  const i = VIEWS.indexOf(state.view);
  let j = null;
  if (e.key === "ArrowRight") j = (i + 1) % VIEWS.length;
  if (e.key === "ArrowLeft") j = (i + VIEWS.length - 1) % VIEWS.length;
  if (e.key === "Home") j = 0;
  if (e.key === "End") j = VIEWS.length - 1;
  if (j !== null) { e.preventDefault(); showView(VIEWS[j]); $(`#tab-${VIEWS[j]}`).focus(); }
});
window.addEventListener("hashchange", () => showView(location.hash.slice(1)));

// -- next word --------------------------------------------------------------------------------
let nwSeq = 0;
let nwTimer = null;
function nextWordSoon() { clearTimeout(nwTimer); nwTimer = setTimeout(nextWord, 120); }

async function nextWord() {
  const seq = ++nwSeq;
  const models = modelsFor("next-word");
  const topK = parseInt($("#nw-top-k").value, 10);
  const settings = {
    context: $("#nw-context").value,
    temperature: parseFloat($("#nw-temperature").value),
    top_k: topK > 0 ? topK : null,
    top_p: parseFloat($("#nw-top-p").value),
    min_p: parseFloat($("#nw-min-p").value),
  };
  const source = $("#nw-source").value;
  const able = models.filter((m) => m.views["next-word"]);
  try {
    const results = await Promise.all(able.map((m) => api("/api/next-word", {
      ...settings, model: m.name, ...(m.conditional ? { source } : {}),
    })));
    if (seq !== nwSeq) return;  // a newer request is on its way
    setError("next-word", "");
    const out = $("#nw-results");
    out.replaceChildren(...results.map((r, k) => nextWordPanel(able[k], r)), ...cannotNotes("next-word", models));
  } catch (e) {
    if (seq === nwSeq) setError("next-word", e.message);
  }
}

function nextWordPanel(m, r) {
  const maxP = Math.max(...r.candidates.map((c) => c.p), 1e-12);
  const items = r.candidates.map((c) => el("li", {},
    el("button", {
      class: "cand", "data-id": c.id, "data-append": c.append, disabled: c.special,
      title: `${m.name}: P(${c.token} | context) = ${fmtP(c.p)} after the transforms, ${fmtP(c.p_model)} from the model (rank ${c.rank_model})`,
      onclick: () => appendToken(c.append),
    },
      el("span", { class: "tok", text: showTok(c.token) }),
      el("span", { class: "barwrap" }, el("span", { class: "bar", style: `width:${(100 * c.p / maxP).toFixed(1)}%` })),
      el("span", { class: "p", text: fmtP(c.p) }),
      el("span", { class: "praw", text: `(${fmtP(c.p_model)})` }))));
  return el("div", { class: "panel", "data-model": m.name },
    panelHead(m),
    el("p", { class: "stats" },
      "entropy ", el("b", { class: "entropy", text: r.entropy_bits.toFixed(3) }), " bits",
      " (model: ", el("span", { class: "entropy-model", text: r.entropy_bits_model.toFixed(3) }), ") · ",
      el("span", { class: "kept", text: r.kept.toLocaleString() }), ` of ${r.vocab_size.toLocaleString()} tokens kept`,
      r.truncated ? el("span", { class: "warn", text: " · context cut to the model's window" }) : null),
    el("ol", { class: "cands" }, items));
}

function appendToken(text) {
  if (!text) return;
  const box = $("#nw-context");
  box.value += text;
  nextWord();
}

for (const id of ["nw-temperature", "nw-top-p", "nw-min-p"]) {
  $(`#${id}`).addEventListener("input", () => {
    $(`#${id}-out`).textContent = parseFloat($(`#${id}`).value).toFixed(2);
    nextWordSoon();
  });
}
for (const id of ["nw-context", "nw-top-k", "nw-source"]) $(`#${id}`).addEventListener("input", nextWordSoon);

// -- surprisal --------------------------------------------------------------------------------
const BUCKET_NAMES = ["top 10", "top 100", "top 1000", "below"];
let spLast = null;

function bitsColour(bits) {
  const x = Math.max(0, Math.min(1, bits / 20));  // 0 .. 20 bits
  return `hsl(${(50 - 50 * x).toFixed(0)}, 95%, ${(96 - 46 * x).toFixed(0)}%)`;
}

function legend() {
  const mode = $("input[name=sp-mode]:checked").value;
  const box = $("#sp-legend");
  if (mode === "rank") {
    box.replaceChildren(...BUCKET_NAMES.map((n, i) => el("span", { class: `chip b${i}`, text: n })));
  } else {
    box.replaceChildren(...[0, 5, 10, 15, 20].map((b) => el("span", { class: "chip", style: `background:${bitsColour(b)}`, text: `${b} bits` })));
  }
}

async function surprisal() {
  const models = modelsFor("surprisal");
  const able = models.filter((m) => m.views.surprisal);
  $("#sp-run").disabled = true;
  try {
    if (!able.length) throw new Error("no checked model can score text; check one above.");
    const r = await api("/api/surprisal", { models: able.map((m) => m.name), text: $("#sp-text").value });
    setError("surprisal", "");
    spLast = { r, able, models };
    drawSurprisal();
  } catch (e) {
    setError("surprisal", e.message);
  } finally {
    $("#sp-run").disabled = false;
  }
}

function drawSurprisal() {
  if (!spLast) return;
  const { r, able, models } = spLast;
  const mode = $("input[name=sp-mode]:checked").value;
  const panels = r.results.map((res, k) => {
    const m = able[k];
    const t = res.totals;
    const detail = el("div", { class: "detail", "aria-live": "polite", text: `${m.name}: hover or focus a token for its probability, rank and alternatives.` });
    const body = el("div", { class: "text" });
    res.sentences.forEach((s) => {
      const p = el("p", {});
      let pos = 0;
      for (const tk of s.tokens) {
        if (tk.start > pos) p.append(s.text.slice(pos, tk.start));
        const w = s.words[tk.word];
        let shown = tk.eos ? "⏎" : (s.text.slice(tk.start, tk.end) || showTok(tk.token));
        const lead = shown.match(/^\s+/);  // the space before a word stays uncoloured
        if (lead && lead[0].length < shown.length) { p.append(lead[0]); shown = shown.slice(lead[0].length); }
        const colour = mode === "bits" ? `background:${bitsColour(w.bits)}` : null;
        const cls = `tok${tk.eos ? " eos" : ""}${mode === "rank" && tk.bucket !== null ? ` b${tk.bucket}` : ""}`;
        const span = el("span", { class: cls, style: colour, tabindex: "0", "data-i": tk.i, "data-bits": tk.bits.toFixed(4), text: shown });
        const show = () => { detail.replaceChildren(...tokenDetail(m, tk, w)); };
        span.addEventListener("mouseenter", show);
        span.addEventListener("focus", show);
        p.append(span);
        pos = Math.max(pos, tk.end);
      }
      if (pos < s.text.length) p.append(s.text.slice(pos));
      body.append(p);
    });
    return el("div", { class: "panel", "data-model": m.name },
      panelHead(m),
      el("p", { class: "stats" },
        el("b", { class: "total-bits", text: t.bits.toFixed(2) }), " bits in all · ",
        el("b", { class: "bits-per-word", text: t.bits_per_word.toFixed(3) }), " bits/word · ",
        el("b", { class: "bits-per-byte", text: t.bits_per_byte.toFixed(4) }), " bits/byte · ",
        el("span", { class: "n-tokens", text: t.tokens }), " tokens",
        res.ranks ? null : el("span", { class: "warn", text: " · no ranks: a masked model has no left-to-right distribution" })),
      body, detail);
  });
  $("#sp-results").replaceChildren(...panels, ...cannotNotes("surprisal", models));
}

function tokenDetail(m, tk, w) {
  const parts = [
    el("b", { text: m.name }), ": token ", el("code", { text: showTok(tk.token) }),
    ` · p = ${fmtP(tk.p)} · ${fmtBits(tk.bits)} bits`,
    tk.rank !== null ? ` · rank ${tk.rank.toLocaleString()} (${BUCKET_NAMES[tk.bucket]})` : "",
    tk.eos ? "" : ` · word “${w.word}” ${fmtBits(w.bits)} bits (${w.n_tokens} token${w.n_tokens > 1 ? "s" : ""})`,
  ];
  if (tk.top) {
    parts.push(el("br"), "top alternatives: ", ...tk.top.map((a) => el("span", { class: "alt", text: `${showTok(a.token)} ${fmtP(a.p)}` })));
  }
  return parts;
}

$("#sp-run").addEventListener("click", surprisal);
for (const r of $$("input[name=sp-mode]")) r.addEventListener("change", () => { legend(); drawSurprisal(); });

// -- attention --------------------------------------------------------------------------------
let atLast = null;

function heat(v) { return `rgba(37, 99, 235, ${Math.max(0, Math.min(1, v)).toFixed(3)})`; }

async function attention() {
  const name = $("#at-model").value;
  const m = state.models.find((x) => x.name === name);
  $("#at-zoom").replaceChildren();
  try {
    if (!m) throw new Error("no transformer is loaded, so there is no attention to show.");
    const r = await api("/api/attention", { model: name, text: $("#at-text").value, ...(m.conditional ? { source: $("#at-source").value } : {}) });
    setError("attention", "");
    atLast = r;
    const groups = r.groups.map((g, gi) => {
      const grid = el("div", { class: "grid", style: `grid-template-columns: repeat(${g.heads}, auto)` });
      g.weights.forEach((layer, l) => layer.forEach((head, h) => {
        const c = el("canvas", { width: 64, height: 64, tabindex: "0", role: "button", class: "mini",
          "aria-label": `${r.model}: ${g.name}, layer ${l + 1}, head ${h + 1}`, title: `${r.model}: layer ${l + 1}, head ${h + 1}`,
          "data-layer": l, "data-head": h, "data-group": gi });
        drawMini(c, head);
        const open = () => zoom(gi, l, h);
        c.addEventListener("click", open);
        c.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
        grid.append(el("figure", {}, c, el("figcaption", { text: `L${l + 1} H${h + 1}` })));
      }));
      return el("div", { class: "panel wide-panel", "data-model": r.model },
        el("h3", {}, `${r.model} · ${g.name}`, el("small", { text: ` ${g.layers} layers × ${g.heads} heads · rows: ${g.query} tokens, columns: ${g.key} tokens` })),
        grid);
    });
    $("#at-results").replaceChildren(...groups);
    zoom(0, 0, 0);
  } catch (e) {
    setError("attention", e.message);
  }
}

function drawMini(canvas, m) {
  const ctx = canvas.getContext("2d");
  const rows = m.length, cols = m[0].length;
  const w = canvas.width / cols, h = canvas.height / rows;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  m.forEach((row, i) => row.forEach((v, j) => {
    ctx.fillStyle = heat(v);
    ctx.fillRect(j * w, i * h, Math.ceil(w), Math.ceil(h));
  }));
}

function zoom(gi, l, h) {
  if (!atLast) return;
  const g = atLast.groups[gi];
  const m = g.weights[l][h];
  const numbers = g.cols.length <= 24;
  const table = el("table", { class: "heat" },
    el("thead", {}, el("tr", {}, el("th", { text: "query ↓ key →" }), ...g.cols.map((t) => el("th", { class: "col", text: showTok(t) })))),
    el("tbody", {}, ...m.map((row, i) => el("tr", {}, el("th", { text: showTok(g.rows[i]) }),
      ...row.map((v, j) => el("td", { style: `background:${heat(v)};color:${v > 0.5 ? "#fff" : "#111"}`, title: `${atLast.model} L${l + 1} H${h + 1}: ${showTok(g.rows[i])} → ${showTok(g.cols[j])} = ${v.toFixed(4)}`, "data-i": i, "data-j": j, text: numbers ? v.toFixed(2) : "" }))))));
  $("#at-zoom").replaceChildren(el("div", { class: "panel wide-panel", "data-model": atLast.model },
    el("h3", { id: "at-zoom-title" }, `${atLast.model} · ${g.name} · layer ${l + 1}, head ${h + 1}`), el("div", { class: "scroll" }, table)));
  $$("canvas.mini").forEach((c) => c.classList.toggle("on", +c.dataset.group === gi && +c.dataset.layer === l && +c.dataset.head === h));
}

function fillAttentionModels() {
  const able = state.models.filter((m) => m.views.attention);
  $("#at-model").replaceChildren(...able.map((m) => el("option", { value: m.name, text: `${m.name} (${m.family})` })));
  const not = state.models.filter((m) => !m.views.attention);
  $("#at-none").replaceChildren(...not.map((m) => el("span", { class: "cannot-line", "data-model": m.name, text: m.why_not.attention + " " })));
  if (!able.length) setError("attention", "none of the loaded models is a transformer, so there are no attention weights to show.");
}
$("#at-run").addEventListener("click", attention);
$("#at-text").addEventListener("keydown", (e) => { if (e.key === "Enter") attention(); });

// -- BPE ----------------------------------------------------------------------------------------
let bpeLast = null;

async function bpe() {
  try {
    const r = await api("/api/bpe", { corpus: $("#bpe-corpus").value, merges: parseInt($("#bpe-merges").value || "0", 10), word: $("#bpe-word").value });
    setError("bpe", "");
    bpeLast = r;
    const step = $("#bpe-step");
    step.max = r.steps.length;
    step.value = Math.min(1, r.steps.length);
    for (const id of ["bpe-step", "bpe-prev", "bpe-next"]) $(`#${id}`).disabled = false;
    drawBpeStep();
    drawSplit(r.split);
  } catch (e) {
    setError("bpe", e.message);
  }
}

function corpusTable(rows) {
  return el("table", { class: "plain" }, el("thead", {}, el("tr", {}, el("th", { text: "count" }), el("th", { text: "word, as symbols" }))),
    el("tbody", {}, ...rows.map(([w, f]) => el("tr", {}, el("td", { class: "num", text: f }), el("td", {}, ...w.split(" ").map((s) => el("span", { class: "sym", text: s })))))));
}

function pairTable(pairs, chosen) {
  return el("table", { class: "plain" }, el("thead", {}, el("tr", {}, el("th", { text: "pair" }), el("th", { text: "count" }))),
    el("tbody", {}, ...pairs.map(([a, b, c]) => el("tr", { class: chosen && a === chosen[0] && b === chosen[1] ? "chosen" : null },
      el("td", {}, el("span", { class: "sym", text: a }), " ", el("span", { class: "sym", text: b })), el("td", { class: "num", text: c })))));
}

function drawBpeStep() {
  if (!bpeLast) return;
  const r = bpeLast;
  const i = parseInt($("#bpe-step").value, 10);
  $("#bpe-step-out").textContent = `${i} / ${r.steps.length}`;
  $("#bpe-prev").disabled = i <= 0;
  $("#bpe-next").disabled = i >= r.steps.length;
  let head, before, after;
  if (i === 0) {
    head = el("p", { class: "merge" }, `The corpus: ${r.types} word types, ${r.tokens} words, alphabet of ${r.alphabet.length} symbols plus the end-of-word marker _.`);
    before = r.initial.pairs;
    after = r.initial.corpus;
  } else {
    const s = r.steps[i - 1];
    head = el("p", { class: "merge" }, `Merge ${i}: `, el("span", { class: "sym", text: s.merge[0] }), " + ", el("span", { class: "sym", text: s.merge[1] }),
      " → ", el("span", { class: "sym new", text: s.symbol }), ` (seen `, el("b", { class: "count", text: s.count }), " times)");
    before = s.pairs;
    after = s.corpus;
  }
  const note = r.stopped_early && i === r.steps.length ? el("p", { class: "muted", text: `Stopped after ${r.steps.length} merges: no pair occurs twice any more.` }) : null;
  $("#bpe-stepview").replaceChildren(head, note || "", el("div", { class: "panels" },
    el("div", { class: "panel" }, el("h3", { text: i === 0 ? "Pair counts" : "Pair counts before this merge" }), pairTable(before, i ? r.steps[i - 1].merge : null)),
    el("div", { class: "panel" }, el("h3", { text: i === 0 ? "Corpus" : "Corpus after this merge" }), corpusTable(after))));
}

function drawSplit(split) {
  const box = $("#bpe-split-result");
  if (!split) { box.replaceChildren(); return; }
  const last = split.steps[split.steps.length - 1];
  box.replaceChildren(el("div", { class: "panel" }, el("h3", { text: `“${split.word}” after each merge that changes it` }),
    el("ol", { class: "splits" }, ...split.steps.map((s) => el("li", {}, ...s.split(" ").map((x) => el("span", { class: "sym", text: x }))))),
    el("p", {}, "tokens: ", el("span", { class: "final" }, ...last.split(" ").map((x) => el("span", { class: "sym new", text: x }))))));
}

$("#bpe-run").addEventListener("click", bpe);
$("#bpe-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const limit = state.limits.max_corpus_chars || 100000;
  const text = await file.text();
  if (text.length > limit) { setError("bpe", `${file.name} has ${text.length.toLocaleString()} characters; the BPE view takes at most ${limit.toLocaleString()}; use a shorter file.`); return; }
  $("#bpe-corpus").value = text;
  bpe();
});
$("#bpe-split").addEventListener("click", bpe);
$("#bpe-word").addEventListener("keydown", (e) => { if (e.key === "Enter") bpe(); });
$("#bpe-step").addEventListener("input", drawBpeStep);
$("#bpe-prev").addEventListener("click", () => { $("#bpe-step").value = +$("#bpe-step").value - 1; drawBpeStep(); });
$("#bpe-next").addEventListener("click", () => { $("#bpe-step").value = +$("#bpe-step").value + 1; drawBpeStep(); });

// -- generate (server-sent events over a streamed POST) ------------------------------------------
function columnTitle(c) {
  if (c.strategy === "greedy") return "greedy";
  if (c.strategy === "beam") return `beam search (${c.num_beams} beams)`;
  const t = `T = ${c.temperature}`;
  return c.top_p < 1 ? `top-p ${c.top_p} sampling (${t}, seed ${c.seed})` : `sampling (${t}, seed ${c.seed})`;
}

async function generate() {
  const models = modelsFor("generate");
  const able = models.filter((m) => m.views.generate);
  const out = $("#gen-results");
  const seed = $("#gen-seed").value;
  const body = {
    models: able.map((m) => m.name), prompt: $("#gen-prompt").value,
    max_new_tokens: parseInt($("#gen-max").value, 10), temperature: parseFloat($("#gen-temperature").value),
    top_p: parseFloat($("#gen-top-p").value), num_beams: parseInt($("#gen-beams").value, 10),
    seed: seed === "" ? null : parseInt(seed, 10),
  };
  if (able.some((m) => m.conditional)) body.source = $("#gen-source").value;
  $("#gen-run").disabled = true;
  try {
    if (!able.length) throw new Error("no checked model can generate; check a left-to-right model above.");
    const res = await fetch("/api/generate", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!res.ok) { const j = await res.json().catch(() => ({})); throw new Error(j.error || `the server answered ${res.status}`); }
    setError("generate", "");
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const line = block.split("\n").find((x) => x.startsWith("data: "));
        if (line) onGenerateEvent(JSON.parse(line.slice(6)), out, able, models);
      }
    }
  } catch (e) {
    setError("generate", e.message);
  } finally {
    $("#gen-run").disabled = false;
  }
}

function onGenerateEvent(ev, out, able, models) {
  if (ev.event === "start") {
    $("#gen-seed-shown")?.remove();
    out.replaceChildren(...ev.models.map((name) => {
      const m = able.find((x) => x.name === name);
      return el("div", { class: "panel wide-panel", "data-model": name }, panelHead(m),
        el("div", { class: "columns" }, ...ev.columns.map((c) => el("div", { class: "gen-col", "data-column": c.column },
          el("h4", { text: `${name} · ${columnTitle(c)}` }),
          el("p", { class: "gen-text" }, el("span", { class: "prompt", text: $("#gen-prompt").value })),
          el("p", { class: "gen-meta muted", text: "…" })))));
    }), ...cannotNotes("generate", models));
  } else if (ev.event === "token") {
    const col = $(`[data-model="${CSS.escape(ev.model)}"] [data-column="${ev.column}"] .gen-text`, out);
    if (col) col.append(el("span", { class: "piece", text: ev.text }));
  } else if (ev.event === "done") {
    const col = $(`[data-model="${CSS.escape(ev.model)}"] [data-column="${ev.column}"]`, out);
    if (!col) return;
    const text = $(".gen-text", col);
    text.replaceChildren(el("span", { class: "prompt", text: $("#gen-prompt").value }), el("span", { class: "output", text: ev.text }));
    $(".gen-meta", col).replaceChildren(`${ev.model}: log P = `, el("b", { class: "logprob", text: ev.logprob.toFixed(3) }),
      ` · ${ev.tokens} token${ev.tokens === 1 ? "" : "s"} · stopped by ${ev.finish_reason}`);
  } else if (ev.event === "error") {
    setError("generate", ev.error);
  }
}
$("#gen-run").addEventListener("click", generate);

// -- ladder -------------------------------------------------------------------------------------
let ladderLoaded = false;
async function ladder() {
  if (ladderLoaded) return;
  const out = $("#ladder-results");
  if (!state.ladder) {
    out.replaceChildren(el("p", { class: "muted", text: "No ladder report: start the server with --ladder REPORT_DIR (a directory written by `chainrule ladder` or `chainrule demo`)." }));
    return;
  }
  try {
    const r = await api("/api/ladder");
    ladderLoaded = true;
    const table = el("table", { class: "plain ladder" },
      el("thead", {}, el("tr", {}, ...r.columns.map((c) => el("th", { text: c })))),
      el("tbody", {}, ...r.rows.map((row) => el("tr", { "data-model": row.model }, ...r.columns.map((c) => el("td", { class: c === "model" || c === "status" ? "" : "num", text: row[c] }))))));
    out.replaceChildren(el("div", { class: "panel wide-panel" }, el("h3", { text: `Ladder report ${r.directory}` }), el("div", { class: "scroll" }, table),
      r.plot ? el("img", { src: "/api/ladder/plot.png", alt: "test perplexity of each model of the ladder" }) : "",
      el("details", {}, el("summary", { text: "report.md" }), el("pre", { text: r.report }))));
  } catch (e) {
    setError("ladder", e.message);
  }
}

// -- start -------------------------------------------------------------------------------------
async function start() {
  try {
    const r = await api("/api/models");
    state.models = r.models;
    state.ladder = r.ladder;
    state.limits = r.limits;
    const box = $("#models");
    box.replaceChildren(el("legend", { text: "Models" }), ...r.models.map((m) =>
      el("label", { title: `${m.family}, ${m.vocab_size} tokens` }, el("input", { type: "checkbox", value: m.name, checked: true, onchange: () => { nextWord(); } }), ` ${m.name} `, el("small", { text: m.family }))));
    if (!r.models.length) box.append(el("span", { class: "muted", text: "no models loaded" }));
    const conditional = r.models.some((m) => m.conditional);
    $$(".source").forEach((x) => { x.hidden = !conditional; });
    fillAttentionModels();
    legend();
    document.body.dataset.ready = "1";
    showView(location.hash.slice(1) || "next-word");
  } catch (e) {
    document.body.prepend(el("p", { class: "error", text: `cannot reach the server: ${e.message}` }));
  }
}
start();
