// Flotilla's live dashboard: one vanilla ES module, no dependency, nothing from elsewhere.
//
// The token arrives once in the URL fragment (#token=...), which browsers never send to
// a server; it is moved to sessionStorage (this tab only) and the fragment is replaced,
// so it leaves the address bar and the history. Every call sends it as a bearer header.
// Data comes from four watch streams (clusters, bindings, works, events: fetch streaming
// of the API's newline-delimited ?watch=true), each resumed from its last
// resourceVersion when the server ends it. Four, not more: a browser opens at most six
// HTTP/1.1 connections to one origin, and the other two serve the page's requests.
// Everything is built with textContent, never innerHTML: names and messages are data.

const KEY = "flotilla.token";
const WATCHES = {
  clusters: "/apis/cluster.flotilla.io/v1alpha1/clusters",
  bindings: "/apis/work.flotilla.io/v1alpha1/resourcebindings",
  works: "/apis/work.flotilla.io/v1alpha1/works",
  events: "/api/v1/events",
};
const ES = "flotilla-es-";
const state = { clusters: new Map(), bindings: new Map(), works: new Map(), events: new Map(),
  synced: new Set(), traffic: null, trafficPrev: null, trafficRate: null, cache: new Map() };

// -- sign-in ----------------------------------------------------------------------------

function takeTokenFromFragment() {
  const frag = location.hash.replace(/^#/, "");
  if (!frag.includes("token=")) return;
  const params = new URLSearchParams(frag.replace(/^\/?[^?&]*\?/, ""));
  const token = params.get("token");
  if (token) sessionStorage.setItem(KEY, token);
  history.replaceState(null, "", location.pathname + "#/platform");
}

function token() { return sessionStorage.getItem(KEY) || ""; }

function askToken(message) {
  const dlg = document.getElementById("signin");
  document.getElementById("signin-error").textContent = message || "";
  if (!dlg.open) dlg.showModal();
}

document.getElementById("signin-form").addEventListener("submit", () => {
  sessionStorage.setItem(KEY, document.getElementById("signin-token").value.trim());
  location.reload();
});

class Unauthorized extends Error {}

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, cache: "no-store", credentials: "omit",
    headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" } });
  if (r.status === 401) { askToken("That token was refused; sign in again."); throw new Unauthorized(); }
  return r;
}

async function getJSON(path) {
  const r = await api(path);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || `${r.status} ${r.statusText}`);
  return body;
}

// -- watches ----------------------------------------------------------------------------

const keyOf = (o) => `${o.metadata.namespace || ""}/${o.metadata.name}`;

async function follow(name) {
  const store = state[name];
  let rv = null;
  for (let failures = 0; ; ) {
    const q = "?watch=true&allowWatchBookmarks=true" + (rv ? `&resourceVersion=${rv}` : "");
    try {
      const r = await api(WATCHES[name] + q);
      if (!r.ok) throw new Error(`watch ${name}: ${r.status}`);
      if (!rv) store.clear();
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      setLive();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl); buf = buf.slice(nl + 1);
          if (!line.trim()) continue;
          const ev = JSON.parse(line);
          if (ev.type === "ERROR") {
            if (ev.object && ev.object.code === 410) rv = null; // compacted: list again
            if (ev.object && ev.object.code === 401) askToken("Your token expired or was revoked.");
            continue;
          }
          rv = ev.object.metadata.resourceVersion;
          if (ev.type === "BOOKMARK") { state.synced.add(name); continue; }
          if (ev.type === "DELETED") store.delete(keyOf(ev.object));
          else store.set(keyOf(ev.object), ev.object);
          changed(name, ev.object);
        }
        if (!buf) { state.synced.add(name); schedule(); }
      }
      failures = 0;
    } catch (e) {
      if (e instanceof Unauthorized) return;
      failures += 1;
    }
    state.synced.delete(name);
    setLive();
    // Back off only after failures; a clean end (the server's watch timeout) resumes now.
    if (failures) await new Promise((ok) => setTimeout(ok, Math.min(5000, 250 * 2 ** failures)));
  }
}

function setLive() {
  const el = document.getElementById("live");
  const n = Object.keys(WATCHES).filter((k) => state.synced.has(k)).length;
  el.textContent = n === 4 ? "live" : `connecting (${n}/4)`;
  el.className = n === 4 ? "live ok" : "live";
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

const listeners = [];
function changed(kind, obj) { for (const fn of listeners) fn(kind, obj); schedule(); }

// -- helpers ----------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "width") el.style.width = v; // CSSOM: the CSP forbids style attributes
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function table(head, rows, attrs) {
  return h("div", { class: "scroll" }, h("table", attrs || {},
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows)));
}

function readyOf(obj) {
  const c = ((obj.status || {}).conditions || []).find((x) => x.type === "Ready");
  return c ? c.status : "Unknown";
}
const READY_TEXT = { True: "Ready", False: "NotReady", Unknown: "Unknown" };

function qty(v) { // "400m" -> 0.4 cpu; "64Mi" -> bytes; plain numbers as they are
  if (v === undefined || v === null) return 0;
  const s = String(v); const m = s.match(/^([0-9.]+)([a-zA-Z]*)$/);
  if (!m) return Number(s) || 0;
  const mult = { m: 1e-3, "": 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(m[1]) * (mult[m[2]] ?? 1);
}

function pct(used, total) { return total ? Math.round((100 * used) / total) : 0; }

function usage(label, used, total, fmt) {
  const p = pct(used, total);
  return [h("dt", {}, label), h("dd", {}, `${fmt(used)} / ${fmt(total)} (${p}%)`,
    h("div", { class: "bar" }, h("span", { width: `${Math.min(p, 100)}%` })))];
}

const cpu = (x) => `${Math.round(x * 1000)}m`;
const mem = (x) => `${Math.round(x / 2 ** 20)}Mi`;
const num = (x) => String(Math.round(x));

function ago(ts) {
  if (!ts) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  return s < 90 ? `${s}s` : s < 5400 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

function deploymentBindings() {
  return [...state.bindings.values()].filter(
    (b) => (b.metadata.labels || {})["flotilla.io/template-kind"] === "Deployment");
}

// Ready replicas of a binding's workload in each cluster, from the Works the agents report.
function readyByCluster(binding) {
  const out = {};
  const wanted = `${binding.metadata.namespace}.${binding.metadata.name}`;
  for (const w of state.works.values()) {
    if (w.metadata.name !== wanted || !w.metadata.namespace.startsWith(ES)) continue;
    const cluster = w.metadata.namespace.slice(ES.length);
    for (const ms of (w.status || {}).manifestStatuses || []) {
      if (ms.identifier && ms.identifier.kind === "Deployment") {
        out[cluster] = (ms.status || {}).readyReplicas || 0;
      }
    }
  }
  return out;
}

// -- traffic (gateway counters through /ui/api/traffic; browser-side refresh) -----------

async function refreshTraffic() {
  try {
    const t = await getJSON("/ui/api/traffic");
    if (t.available && state.traffic && state.traffic.available) {
      const rate = {};
      const prev = new Map(state.traffic.rows.map((r) => [`${r.service}|${r.cluster}`, r]));
      for (const r of t.rows) {
        const p = prev.get(`${r.service}|${r.cluster}`) || { requests: 0, errors: 0 };
        rate[`${r.service}|${r.cluster}`] = {
          requests: Math.max(0, r.requests - p.requests), errors: Math.max(0, r.errors - p.errors) };
      }
      state.trafficRate = rate;
    }
    state.traffic = t;
  } catch (e) {
    if (e instanceof Unauthorized) return;
    state.traffic = { available: false, reason: String(e.message || e) };
  }
  schedule();
}

// Share of requests per cluster (over the last refresh when there was traffic, else since
// the gateway started), optionally for one service.
function trafficShare(service) {
  const t = state.traffic;
  if (!t || !t.available) return null;
  const recent = state.trafficRate && Object.values(state.trafficRate).some((r) => r.requests > 0);
  const per = {}; let total = 0; let errors = 0;
  for (const r of t.rows) {
    if (service && r.service !== service) continue;
    const v = recent ? (state.trafficRate[`${r.service}|${r.cluster}`] || { requests: 0, errors: 0 }) : r;
    per[r.cluster] = (per[r.cluster] || { requests: 0, errors: 0 });
    per[r.cluster].requests += v.requests; per[r.cluster].errors += v.errors;
    total += v.requests; errors += v.errors;
  }
  return { per, total, errors, window: recent ? "last 5 s" : "since the gateway started" };
}

function shareText(share, cluster) {
  if (!share) return "n/a";
  const p = share.per[cluster];
  if (!share.total) return "no requests";
  if (!p) return "0%";
  return `${Math.round((100 * p.requests) / share.total)}%`;
}

// -- pages ------------------------------------------------------------------------------

function pagePlatform() {
  const share = trafficShare(null);
  const regions = new Map();
  for (const c of [...state.clusters.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    const region = (c.spec || {}).region || "(no region)";
    const zone = (c.spec || {}).zone || "(no zone)";
    if (!regions.has(region)) regions.set(region, new Map());
    const zones = regions.get(region);
    if (!zones.has(zone)) zones.set(zone, []);
    zones.get(zone).push(c);
  }
  const ready = [...state.clusters.values()].filter((c) => readyOf(c) === "True").length;
  const out = [h("h1", {}, `Platform: ${ready}/${state.clusters.size} clusters Ready`),
    h("p", { class: "muted" }, share ? `traffic share ${share.window}` :
      `traffic share n/a${state.traffic && state.traffic.reason ? ` (${state.traffic.reason})` : ""}`)];
  const sections = [];
  for (const [region, zones] of [...regions].sort()) {
    sections.push(h("section", { class: "region" }, h("h2", {}, `Region ${region}`),
      h("div", { class: "zones" }, [...zones].sort().map(([zone, clusters]) => h("div", { class: "zone" },
        h("div", { class: "zone-name" }, `zone ${zone}`),
        h("div", { class: "grid" }, clusters.map((c) => clusterCard(c, share))))))));
  }
  out.push(h("div", { class: "regions" }, sections));
  if (!state.clusters.size) out.push(h("p", { class: "muted" }, state.synced.has("clusters") ? "No clusters." : "Loading..."));
  return out;
}

function clusterCard(c, share) {
  const name = c.metadata.name;
  const st = c.status || {};
  const ready = readyOf(c);
  const alloc = st.allocatable || st.capacity || {};
  const used = st.allocated || {};
  const nodes = st.nodeSummary || {};
  const taints = ((c.spec || {}).taints || []).map((t) => `${t.key}${t.value ? "=" + t.value : ""}:${t.effect}`);
  const cond = (st.conditions || []).find((x) => x.type === "Ready") || {};
  return h("div", { class: "card cluster", "data-cluster": name },
    h("h3", {}, h("a", { href: `#/tree/${encodeURIComponent(name)}` }, name), " ",
      h("span", { class: `state ${ready}`, "data-ready": ready }, READY_TEXT[ready] || ready)),
    h("div", { class: "muted" }, cond.message || ""),
    h("dl", {},
      h("dt", {}, "nodes"), h("dd", {}, `${nodes.ready ?? "?"}/${nodes.total ?? "?"} ready`),
      h("dt", {}, "taints"), h("dd", { class: taints.length ? "warn" : "" }, taints.join(", ") || "none"),
      usage("cpu", qty(used.cpu), qty(alloc.cpu), cpu),
      usage("memory", qty(used.memory), qty(alloc.memory), mem),
      usage("pods", qty(used.pods), qty(alloc.pods), num),
      h("dt", {}, "traffic"), h("dd", { class: "traffic" }, shareText(share, name))));
}

function pageApps() {
  const rows = deploymentBindings().sort((a, b) => keyOf(a).localeCompare(keyOf(b))).map((b) => {
    const ns = b.metadata.namespace; const name = b.metadata.labels["flotilla.io/template-name"];
    const ready = readyByCluster(b);
    const total = Object.values(ready).reduce((x, y) => x + y, 0);
    return h("tr", {}, h("td", {}, h("a", { href: `#/app/${ns}/${name}` }, `${ns}/${name}`)),
      h("td", {}, `${total}/${b.spec.replicas ?? "?"}`),
      h("td", {}, (b.spec.clusters || []).filter((t) => t.replicas).map((t) => `${t.name}:${t.replicas}`).join(", ")));
  });
  return [h("h1", {}, "Apps"), rows.length ? table(["DEPLOYMENT", "READY", "PLACEMENT"], rows)
    : h("p", { class: "muted" }, "No Deployments are propagated yet.")];
}

// Objects the app page reads once and again when its binding changes (no watch slots left).
async function cached(path, version) {
  const hit = state.cache.get(path);
  if (hit && hit.version === version) return hit.value;
  const entry = { version, value: hit ? hit.value : null };
  state.cache.set(path, entry);
  try { entry.value = await getJSON(path); } catch (e) { entry.value = { error: String(e.message || e) }; }
  schedule();
  return entry.value;
}

function peek(path, version) {
  const hit = state.cache.get(path);
  if (!hit || hit.version !== version) cached(path, version);
  return hit ? hit.value : null;
}

function rolloutState(binding) {
  const a = binding.metadata.annotations || {};
  try {
    return { state: a["rollout.flotilla.io/state"] ? JSON.parse(a["rollout.flotilla.io/state"]) : null,
      pins: a["rollout.flotilla.io/pins"] ? JSON.parse(a["rollout.flotilla.io/pins"]) : {} };
  } catch { return { state: null, pins: {} }; }
}

function pageApp(ns, name) {
  const binding = state.bindings.get(`${ns}/${name}-deployment`);
  if (!binding) return [h("h1", {}, `deploy/${name}`), h("p", { class: "muted" }, "No such propagated Deployment (yet).")];
  const version = binding.metadata.resourceVersion;
  const ready = readyByCluster(binding);
  const agg = new Map(((binding.status || {}).aggregatedStatus || []).map((s) => [s.clusterName, s]));
  const targets = binding.spec.clusters || [];
  const names = [...new Set([...targets.map((t) => t.name), ...Object.keys(ready)])].sort();
  const desiredTotal = targets.reduce((x, t) => x + (t.replicas || 0), 0);
  // Ready where replicas are placed: a dead cluster's last report is not capacity.
  const readyTotal = targets.filter((t) => t.replicas).reduce((x, t) => x + Math.min(ready[t.name] || 0, t.replicas), 0);
  const placement = names.map((c) => {
    const t = targets.find((x) => x.name === c);
    const cl = state.clusters.get(`/${c}`);
    return h("tr", { "data-cluster": c },
      h("td", {}, h("a", { href: `#/tree/${c}` }, c)),
      h("td", { class: cl ? `state ${readyOf(cl)}` : "" }, cl ? READY_TEXT[readyOf(cl)] : "?"),
      h("td", { class: "desired" }, String(t ? t.replicas || 0 : 0)),
      h("td", { class: "ready" }, String(ready[c] ?? 0)),
      h("td", {}, (agg.get(c) || {}).health || ""));
  });
  const out = [h("h1", {}, `deploy/${name}`, h("span", { class: "muted" }, ` in ${ns}`)),
    h("p", { id: "app-summary" }, `${readyTotal}/${binding.spec.replicas ?? desiredTotal} replicas ready; placed ${desiredTotal}`),
    h("h2", {}, "Placement"), table(["CLUSTER", "STATE", "DESIRED", "READY", "HEALTH"], placement, { id: "placement" })];
  const sched = ((binding.status || {}).conditions || []).find((c) => c.type === "Scheduled");
  if (sched) out.push(h("p", { class: sched.status === "True" ? "muted" : "bad" }, `Scheduled: ${sched.reason}: ${sched.message}`));

  // rollout
  out.push(h("h2", {}, "Rollout"));
  const { state: ro, pins } = rolloutState(binding);
  if (!ro) out.push(h("p", { class: "muted" }, "No RolloutPolicy state: a new revision goes everywhere at once."));
  else {
    const onNew = Object.entries(pins).filter(([, r]) => r === ro.revision).length;
    out.push(h("p", { id: "rollout-phase" }, h("strong", {}, ro.phase),
      ` revision ${ro.revision} (stable ${ro.stable}): ${onNew}/${Object.keys(pins).length} clusters on it`),
    h("p", { class: "muted" }, ro.message || ""));
    const waves = h("div", { id: "waves" });
    (ro.waves || []).forEach((clusters, i) => {
      const rec = [...(ro.records || [])].reverse().find((r) => r.wave === i);
      const mark = rec ? rec.result : (i === ro.wave && ro.phase === "Progressing" ? "running" : "");
      const f = rec ? rec.figures || {} : (i === ro.wave ? ro.figures || {} : {});
      const figures = "requests" in f ? `requests ${f.requests}, error rate ${f.errorRate}, p99 ${f.p99Seconds}s` : "";
      waves.append(h("div", { class: `wave ${mark}`, "data-wave": i + 1, "data-result": mark || "pending" },
        h("strong", {}, `wave ${i + 1}`), ` ${clusters.map((c) => `${c}@r${pins[c] ?? "?"}`).join(", ") || "(none)"} `,
        h("span", { class: "result" }, mark || "pending"), figures ? h("div", { class: "muted" }, `gate: ${figures}`) : null));
    });
    out.push(waves);
    if (ro.why && Object.keys(ro.why).length) {
      out.push(table(["CLUSTER", "REVISION", "WHY"], Object.entries(pins).sort().map(([c, r]) =>
        h("tr", {}, h("td", {}, c), h("td", {}, String(r)), h("td", {}, ro.why[c] || "")))));
    }
  }

  // traffic
  out.push(h("h2", {}, "Traffic"));
  const tps = peek(`/apis/traffic.flotilla.io/v1alpha1/namespaces/${ns}/trafficpolicies`, version);
  const tp = tps && tps.items ? tps.items.find((p) => (p.spec || {}).service === name) : null;
  const service = `${ns}/${tp ? tp.spec.service : name}`;
  const share = trafficShare(service);
  if (!share) out.push(h("p", { class: "muted" }, "n/a: the gateway's metrics are not reachable from the API server"));
  else {
    out.push(h("p", {}, `${tp ? `TrafficPolicy ${tp.metadata.name} (${(tp.spec.strategy || {}).type || "?"}), ` : ""}` +
      `error rate ${share.total ? (100 * share.errors / share.total).toFixed(2) : "0.00"}% (${share.window}, ${Math.round(share.total)} tries)`));
    out.push(table(["CLUSTER", "SHARE", "TRIES", "ERRORS"], Object.entries(share.per).sort().map(([c, v]) =>
      h("tr", {}, h("td", {}, c), h("td", {}, shareText(share, c)), h("td", {}, num(v.requests)), h("td", {}, num(v.errors))))));
  }

  // policies
  out.push(h("h2", {}, "Policies"));
  const pol = binding.spec.policy || {};
  const items = [];
  if (pol.name) items.push(`${pol.kind} ${pol.namespace ? pol.namespace + "/" : ""}${pol.name}`);
  const ovs = ((state.works.get(`${ES}${names[0]}/${ns}.${binding.metadata.name}`) || {}).metadata || {}).annotations;
  if (ovs && ovs["flotilla.io/overrides"]) items.push(`overrides in ${names[0]}: ${ovs["flotilla.io/overrides"]}`);
  for (const [kind, plural] of [["OverridePolicy", "overridepolicies"], ["RolloutPolicy", "rolloutpolicies"]]) {
    const list = peek(`/apis/${kind === "RolloutPolicy" ? "apps.flotilla.io" : "policy.flotilla.io"}/v1alpha1/namespaces/${ns}/${plural}`, version);
    for (const p of (list && list.items) || []) items.push(`${kind} ${ns}/${p.metadata.name}`);
  }
  if (tp) items.push(`TrafficPolicy ${ns}/${tp.metadata.name}`);
  const timers = (binding.metadata.annotations || {})["failover.flotilla.io/timers"];
  out.push(h("ul", {}, items.map((i) => h("li", {}, i))));
  if (timers) out.push(h("p", { class: "muted" }, `failover: ${timers}`));

  // events
  out.push(h("h2", {}, "Events"));
  const mine = [...state.events.values()].filter((e) => (e.metadata.namespace === ns || !e.metadata.namespace) &&
    [name, binding.metadata.name].includes((e.involvedObject || {}).name));
  out.push(eventTable(mine.sort(byTime).slice(0, 50)));
  return out;
}

const evTime = (e) => e.lastTimestamp || e.eventTime || e.firstTimestamp || e.metadata.creationTimestamp || "";
const byTime = (a, b) => evTime(b).localeCompare(evTime(a)) || Number(b.metadata.resourceVersion) - Number(a.metadata.resourceVersion);

function eventTable(events) {
  if (!events.length) return h("p", { class: "muted" }, "No events.");
  return table(["WHEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], events.map((e) => {
    const o = e.involvedObject || {};
    return h("tr", { class: "event" }, h("td", { title: evTime(e) }, ago(evTime(e))),
      h("td", { class: e.type }, e.type || ""), h("td", {}, e.reason || ""),
      h("td", {}, `${o.kind || ""}/${o.name || ""}`), h("td", {}, `${e.message || ""}${e.count > 1 ? ` (x${e.count})` : ""}`));
  }));
}

const filters = { text: "", type: "", kind: "" };
function pageEvents() {
  const all = [...state.events.values()];
  const kinds = [...new Set(all.map((e) => (e.involvedObject || {}).kind).filter(Boolean))].sort();
  const t = filters.text.toLowerCase();
  const shown = all.filter((e) => (!filters.type || e.type === filters.type) &&
    (!filters.kind || (e.involvedObject || {}).kind === filters.kind) &&
    (!t || `${e.reason} ${e.message} ${(e.involvedObject || {}).name} ${e.source && e.source.component}`.toLowerCase().includes(t)))
    .sort(byTime).slice(0, 300);
  const keep = (k) => (ev) => { filters[k] = ev.target.value; schedule(); };
  return [h("h1", {}, `Timeline: ${shown.length} of ${all.length} events`),
    h("div", { class: "filters" },
      h("input", { id: "ev-text", type: "search", placeholder: "filter: reason, message, object", value: filters.text, oninput: keep("text") }),
      h("select", { id: "ev-type", onchange: keep("type") }, ["", "Normal", "Warning"].map((v) =>
        h("option", { value: v, selected: v === filters.type }, v || "any type"))),
      h("select", { id: "ev-kind", onchange: keep("kind") }, ["", ...kinds].map((v) =>
        h("option", { value: v, selected: v === filters.kind }, v || "any kind")))),
    eventTable(shown)];
}

// -- hierarchy: Platform > Cluster > Node > Pod > Container > log tail ------------------

function memberPath(cluster, view) { return `/ui/api/members/${encodeURIComponent(cluster)}/${view}`; }
// Member views are asked again when that cluster's Works change (their status moves as
// pods start, become ready or go away), not on a timer.
const memberVersion = (cluster) => [...state.works.values()].filter((w) => w.metadata.namespace === ES + cluster)
  .map((w) => w.metadata.resourceVersion).join(",") + "|" + ((state.clusters.get(`/${cluster}`) || { metadata: {} }).metadata.resourceVersion || "");

function pageTree(parts) {
  const [cluster, node, ns, pod, container] = parts.map(decodeURIComponent);
  const link = (label, ...p) => h("a", { href: "#/tree/" + p.map(encodeURIComponent).join("/") }, label);
  const crumbs = [link("Platform")];
  if (cluster) crumbs.push(" > ", link(cluster, cluster));
  if (node) crumbs.push(" > ", link(node, cluster, node));
  if (pod) crumbs.push(" > ", link(pod, cluster, node, ns, pod));
  if (container) crumbs.push(" > ", container);
  const out = [h("h1", {}, "Hierarchy"), h("div", { class: "crumbs" }, crumbs)];
  if (!cluster) {
    out.push(h("ul", { class: "tree" }, [...state.clusters.values()].map((c) => h("li", {},
      link(c.metadata.name, c.metadata.name), " ", h("span", { class: `state ${readyOf(c)}` }, READY_TEXT[readyOf(c)]),
      h("span", { class: "muted" }, ` ${(c.spec || {}).region}/${(c.spec || {}).zone}, ${((c.status || {}).nodeSummary || {}).total ?? "?"} nodes`)))));
    return out;
  }
  const v = memberVersion(cluster);
  const nodes = peek(memberPath(cluster, "nodes"), v);
  const pods = peek(memberPath(cluster, "pods"), v);
  const problem = [nodes, pods].find((x) => x && x.error);
  if (problem) out.push(h("p", { class: "bad" }, problem.error));
  if (!nodes || !pods || problem) { if (!problem) out.push(h("p", { class: "muted" }, "Loading...")); return out; }
  if (!node) {
    out.push(h("ul", { class: "tree" }, nodes.map((n) => h("li", {}, link(n.name, cluster, n.name), " ",
      h("span", { class: n.ready ? "ok" : "bad" }, n.ready ? "Ready" : "NotReady"),
      h("span", { class: "muted" }, ` ${n.pods} pods, cpu ${n.allocated.cpu_millis}m/${n.allocatable.cpu_millis}m`)))));
    return out;
  }
  const onNode = pods.filter((p) => p.node === node);
  if (!pod) {
    out.push(h("ul", { class: "tree" }, onNode.map((p) => h("li", { class: "pod" }, link(`${p.namespace}/${p.name}`, cluster, node, p.namespace, p.name),
      " ", h("span", { class: p.ready ? "ok" : "warn" }, p.status), h("span", { class: "muted" }, ` restarts ${p.restarts}`)))));
    if (!onNode.length) out.push(h("p", { class: "muted" }, "No pods on this node."));
    return out;
  }
  const p = pods.find((x) => x.namespace === ns && x.name === pod);
  if (!p) { out.push(h("p", { class: "muted" }, "This pod is gone.")); return out; }
  if (!container) {
    out.push(h("dl", {}, h("dt", {}, "status"), h("dd", {}, `${p.status} ${p.reason || ""}`), h("dt", {}, "owner"), h("dd", {}, p.owner || ""),
      h("dt", {}, "address"), h("dd", {}, p.address || "")));
    out.push(h("ul", { class: "tree" }, (p.containers || []).map((c) => h("li", { class: "container" },
      link(c.name, cluster, node, ns, pod, c.name), " ", h("span", { class: c.ready ? "ok" : "warn" }, c.state),
      h("span", { class: "muted" }, ` ${c.image}, restarts ${c.restart_count}`)))));
    return out;
  }
  out.push(h("h2", {}, `Log tail of ${container}`), logView(cluster, ns, pod, container));
  return out;
}

const logs = new Map();
function logView(cluster, ns, pod, container) {
  const path = memberPath(cluster, `logs/${encodeURIComponent(ns)}/${encodeURIComponent(pod)}`) +
    `?container=${encodeURIComponent(container)}&tail=200`;
  const load = async () => {
    try {
      const r = await api(path);
      logs.set(path, r.ok ? await r.text() : `error: ${(await r.json().catch(() => ({}))).message || r.status}`);
    } catch (e) { if (!(e instanceof Unauthorized)) logs.set(path, String(e)); }
    schedule();
  };
  if (!logs.has(path)) { logs.set(path, null); load(); }
  const text = logs.get(path);
  return h("div", {}, h("button", { onclick: () => { load(); } }, "Refresh"),
    h("pre", { class: "log", id: "log" }, text === null ? "Loading..." : (text || "(empty)")));
}

// -- what-if -----------------------------------------------------------------------------

const whatif = { fail: new Set(), result: null, error: "" };
async function runWhatif() {
  const q = [...whatif.fail].map((c) => `fail=${encodeURIComponent(c)}`).join("&");
  try { whatif.result = await getJSON(`/ui/api/whatif?${q}`); whatif.error = ""; }
  catch (e) { whatif.result = null; whatif.error = String(e.message || e); }
  schedule();
}

function pageWhatif() {
  const split = (m) => Object.entries(m).filter(([, r]) => r).sort().map(([c, r]) => `${c}:${r}`).join(", ") || "-";
  const out = [h("h1", {}, "What-if"), h("p", { class: "muted" }, "Pick clusters to fail: the scheduler decides where their replicas would go. Nothing changes."),
    h("div", { class: "filters" }, [...state.clusters.values()].map((c) => h("label", {},
      h("input", { type: "checkbox", value: c.metadata.name, checked: whatif.fail.has(c.metadata.name),
        onchange: (ev) => { if (ev.target.checked) whatif.fail.add(ev.target.value); else whatif.fail.delete(ev.target.value); schedule(); } }),
      ` ${c.metadata.name}`)),
    h("button", { id: "whatif-run", disabled: !whatif.fail.size, onclick: runWhatif }, "Simulate"))];
  if (whatif.error) out.push(h("p", { class: "bad" }, whatif.error));
  const r = whatif.result;
  if (r) {
    out.push(h("h2", {}, `If ${r.failed.join(", ")} failed`),
      table(["WORKLOAD", "NOW", "AFTER FAILOVER", "UNPLACED", "PROBLEM"], r.workloads.map((w) => h("tr", {},
        h("td", {}, w.binding), h("td", {}, split(w.before)), h("td", {}, split(w.after)),
        h("td", { class: w.unplaced ? "bad" : "" }, String(w.unplaced)), h("td", {}, w.problem || ""))), { id: "whatif-table" }));
    for (const w of r.workloads.filter((x) => x.unplaced)) {
      out.push(h("p", {}, `${w.binding}: ${w.unplaced} replica(s) would have nowhere to go:`),
        h("ul", {}, Object.entries(w.reasons).sort().map(([c, why]) => h("li", {}, `${c}: ${why}`))));
    }
    if (r.traffic.length) {
      out.push(table(["TRAFFIC POLICY", "SERVICE", "ENDPOINTS NOW", "LEFT", "REBUILT ON"], r.traffic.map((t) => h("tr", {},
        h("td", {}, t.policy), h("td", {}, t.service), h("td", {}, String(t.endpointsBefore)),
        h("td", { class: t.losesAll ? "bad" : "" }, `${t.endpointsLeft}${t.losesAll ? " (loses all)" : ""}`),
        h("td", {}, t.rebuiltOn.join(", ") || "-")))));
    }
  }
  return out;
}

// -- routing and rendering ------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  return { page: parts[0] || "platform", rest: parts.slice(1) };
}

function render() {
  const { page, rest } = route();
  const pages = {
    platform: pagePlatform, apps: pageApps, events: pageEvents, whatif: pageWhatif,
    app: () => pageApp(rest[0] || "default", rest[1] || ""), tree: () => pageTree(rest),
  };
  const main = document.getElementById("main");
  // Keep the focused filter box across re-renders (events arrive while typing).
  const focused = document.activeElement && document.activeElement.id;
  const pos = focused && document.activeElement.selectionStart;
  main.replaceChildren(...(pages[page] || pagePlatform)());
  main.dataset.page = page;
  setLive();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.page === page || (page === "app" && a.dataset.page === "apps"));
  }
  if (focused) {
    const el = document.getElementById(focused);
    if (el) { el.focus(); if (pos !== null && pos !== undefined && el.setSelectionRange) el.setSelectionRange(pos, pos); }
  }
}

function start() {
  takeTokenFromFragment();
  window.addEventListener("hashchange", schedule);
  render();
  if (!token()) { askToken(""); return; }
  for (const name of Object.keys(WATCHES)) follow(name);
  refreshTraffic();
  // Gateway counters are not objects the API can watch: the page asks for them every 5 s
  // (its own timer; the server holds nothing open for it).
  setInterval(refreshTraffic, 5000);
  setInterval(schedule, 10000); // "5s ago" labels age
}

start();
