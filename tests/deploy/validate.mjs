// Offline validation of Kubernetes manifests against the Kubernetes API's own schemas.
// Run by tests/deploy/lint.sh, which installs the packages this imports (package-lock.json).
//
//   node validate.mjs [--each-must-fail] FILE.yaml...
//
// For every YAML document:
//   1. parse as YAML 1.1, as Kubernetes reads it (so `yes`/`on` are booleans), with duplicate
//      keys an error;
//   2. the OpenAPI schema of its apiVersion/kind (kubernetes-models: ajv validators generated
//      from the Kubernetes OpenAPI spec): types, enums, required fields, formats;
//   3. unknown fields, as `kubectl --validate=strict` rejects them: every key must be a
//      property of its type in the Kubernetes OpenAPI spec (@kubernetes/client-node's models);
//   4. references between the files: the namespace, service account, ConfigMaps and Secrets
//      a workload uses are defined (optional references excepted);
//   5. llmtap's policy for its pods: no privileged container, capabilities drop ALL and add
//      only what tests/deploy/caps.sh shows llmtap needs, a read-only root file system,
//      no privilege escalation, CPU and memory limits.
// Prints one line per problem and a summary; exits 1 if any (or, with --each-must-fail,
// if some file has none: the self-test of broken manifests).
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import * as models from "@kubernetes/client-node/dist/gen/models/all.js";

// what llmtap's DaemonSet may add (tests/deploy/caps.sh, deploy/kubernetes/daemonset.yaml)
const ALLOWED_CAPS = new Set(["BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH"]);
const WORKLOADS = new Set(["DaemonSet", "Deployment", "StatefulSet", "Job", "ReplicaSet", "Pod"]);

const argv = process.argv.slice(2);
const eachMustFail = argv[0] === "--each-must-fail";
const rest = eachMustFail ? argv.slice(1) : argv;
const cut = rest.indexOf("--context");
const files = cut < 0 ? rest : rest.slice(0, cut);
const context = cut < 0 ? [] : rest.slice(cut + 1);
if (!files.length) {
  console.error("usage: validate.mjs [--each-must-fail] FILE.yaml... [--context FILE.yaml...]");
  process.exit(2);
}

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function editDistance(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1,
        d[i - 1][j - 1] + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
  return d[a.length][b.length];
}

// "/spec/containers/0/name" (ajv's instance path) -> "spec.containers[0].name"
function dotted(pointer) {
  return pointer.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join("").slice(1) ||
    "(the object)";
}

// The type of a top-level object as @kubernetes/client-node (the Kubernetes 1.36 API) names
// it: "<Version><Kind>", or "<Group><Version><Kind>" where two groups share a kind (Event).
// undefined: no API served by current Kubernetes has it (a removed or misspelt apiVersion).
function modelName(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
  const cap = (w) => w.charAt(0).toUpperCase() + w.slice(1);
  return [cap(version) + kind, cap(group.split(".")[0]) + cap(version) + kind]
    .find((n) => typeof models[n]?.getAttributeTypeMap === "function");
}

// Unknown fields, recursively along the OpenAPI types.
function strict(value, type, path, out) {
  if (value === null || value === undefined) return;
  let m = /^Array<(.+)>$/.exec(type);
  if (m) {
    if (Array.isArray(value)) value.forEach((v, i) => strict(v, m[1], `${path}[${i}]`, out));
    return;
  }
  m = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) {
    if (isObj(value)) for (const [k, v] of Object.entries(value)) strict(v, m[1], `${path}.${k}`, out);
    return;
  }
  const cls = models[type];
  if (!cls || typeof cls.getAttributeTypeMap !== "function" || !isObj(value)) return;
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (attrs.has(k)) {
      strict(v, attrs.get(k), `${path}.${k}`, out);
      continue;
    }
    const near = [...attrs.keys()].map((n) => [editDistance(k, n), n]).sort((a, b) => a[0] - b[0])[0];
    out.push(`${`${path}.${k}`.slice(1)}: unknown field in ${type.replace(/^V\d+(beta|alpha)?\d*/, "")}` +
      (near && near[0] <= 3 ? ` (did you mean "${near[1]}"?)` : ""));
  }
}

async function schemaCheck(obj, out) {
  let mod;
  try {
    mod = await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`);
  } catch {
    out.push(`apiVersion ${obj.apiVersion}, kind ${obj.kind}: not a Kubernetes API type`);
    return false;
  }
  try {
    new mod[obj.kind](obj).validate();
  } catch (e) {
    for (const line of String(e.message).split(/,\s*(?=data)|\n/))
      out.push(line.replace(/^data(\S*)/, (_, ptr) => dotted(ptr)));
  }
  return true;
}

function podSpecOf(obj) {
  if (obj.kind === "Pod") return obj.spec;
  if (obj.kind === "Job") return obj.spec?.template?.spec;
  return obj.spec?.template?.spec;
}

function policy(obj, out) {
  const spec = podSpecOf(obj);
  if (!isObj(spec)) return;
  for (const [i, c] of (spec.containers ?? []).concat(spec.initContainers ?? []).entries()) {
    const where = `container ${c?.name ?? i}`;
    const sc = c?.securityContext ?? {};
    if (sc.privileged === true) out.push(`${where}: privileged (llmtap needs capabilities, not a privileged pod)`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${where}: set securityContext.allowPrivilegeEscalation: false`);
    if (sc.readOnlyRootFilesystem !== true) out.push(`${where}: set securityContext.readOnlyRootFilesystem: true`);
    const drop = sc.capabilities?.drop ?? [];
    if (!drop.includes("ALL")) out.push(`${where}: securityContext.capabilities.drop must include ALL`);
    for (const cap of sc.capabilities?.add ?? []) {
      const name = String(cap).replace(/^CAP_/, "");
      if (!ALLOWED_CAPS.has(name))
        out.push(`${where}: capability ${cap} is not one llmtap needs (${[...ALLOWED_CAPS].join(", ")})`);
    }
    for (const r of ["cpu", "memory"])
      if (c?.resources?.limits?.[r] === undefined) out.push(`${where}: no resources.limits.${r}`);
  }
}

function references(objects, problems) {
  const defined = new Set(objects.map(({ obj }) => `${obj.kind}/${obj.metadata?.namespace ?? ""}/${obj.metadata?.name}`));
  const namespaces = new Set(objects.filter(({ obj }) => obj.kind === "Namespace").map(({ obj }) => obj.metadata?.name));
  for (const { file, obj } of objects) {
    const ns = obj.metadata?.namespace;
    const add = (msg) => problems.get(file).push(`${obj.kind}/${obj.metadata?.name}: ${msg}`);
    if (ns && namespaces.size && !namespaces.has(ns)) add(`namespace ${ns} is not defined in these files`);
    const spec = podSpecOf(obj);
    if (!WORKLOADS.has(obj.kind) || !isObj(spec)) continue;
    const need = (kind, name, optional) => {
      if (name && !optional && !defined.has(`${kind}/${ns ?? ""}/${name}`))
        add(`${kind} ${name} is used but not defined in these files`);
    };
    if (spec.serviceAccountName) need("ServiceAccount", spec.serviceAccountName, false);
    for (const c of (spec.containers ?? []).concat(spec.initContainers ?? [])) {
      for (const e of c?.envFrom ?? []) {
        need("ConfigMap", e.configMapRef?.name, e.configMapRef?.optional);
        need("Secret", e.secretRef?.name, e.secretRef?.optional);
      }
      for (const e of c?.env ?? []) {
        need("ConfigMap", e.valueFrom?.configMapKeyRef?.name, e.valueFrom?.configMapKeyRef?.optional);
        need("Secret", e.valueFrom?.secretKeyRef?.name, e.valueFrom?.secretKeyRef?.optional);
      }
    }
    for (const v of spec.volumes ?? []) {
      need("ConfigMap", v.configMap?.name, v.configMap?.optional);
      need("Secret", v.secret?.secretName, v.secret?.optional);
    }
  }
}

// Parse and check one file: its objects and problems.
async function checkFile(file) {
  const out = [];
  const objs = [];
  let docs;
  try {
    docs = parseAllDocuments(readFileSync(file, "utf8"), { version: "1.1", uniqueKeys: true });
  } catch (e) {
    return { objs, out: [`cannot read: ${e.message}`] };
  }
  for (const [n, doc] of docs.entries()) {
    const at = docs.length > 1 ? `document ${n + 1}: ` : "";
    if (doc.errors.length) {
      for (const e of doc.errors) out.push(`${at}YAML: ${e.message.split("\n")[0]}`);
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    if (!isObj(obj) || typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
      out.push(`${at}not a Kubernetes object (no apiVersion and kind)`);
      continue;
    }
    const mine = [];
    const model = modelName(obj.apiVersion, obj.kind);
    if (await schemaCheck(obj, mine)) {
      if (model) strict(obj, model, "", mine);
      else mine.push(`apiVersion ${obj.apiVersion}, kind ${obj.kind}: not served by Kubernetes 1.36`);
      if (WORKLOADS.has(obj.kind)) policy(obj, mine);
    }
    for (const p of mine) out.push(`${at}${obj.kind}/${obj.metadata?.name}: ${p}`);
    objs.push({ file, obj });
  }
  return { objs, out };
}

const checked = new Map();
for (const f of [...files, ...context]) if (!checked.has(f)) checked.set(f, await checkFile(f));
const report = (file, ps) => ps.forEach((p) => console.log(`${file}: ${p}`));

if (eachMustFail) {
  // each broken file beside the good context files: it alone must be rejected
  let rejected = 0, contextBad = 0;
  for (const f of context) {
    report(f, checked.get(f).out);
    contextBad += checked.get(f).out.length;
  }
  for (const f of files) {
    const problems = new Map([[f, [...checked.get(f).out]]]);
    context.forEach((c) => problems.set(c, []));
    references([...checked.get(f).objs, ...context.flatMap((c) => checked.get(c).objs)], problems);
    const ps = problems.get(f);
    if (ps.length) {
      rejected++;
      console.log(`${f}: rejected: ${ps[0]}${ps.length > 1 ? ` (+${ps.length - 1} more)` : ""}`);
    } else {
      console.log(`${f}: accepted, but it is broken`);
    }
  }
  console.log(`validate: ${rejected} of ${files.length} broken manifests rejected`);
  process.exit(rejected === files.length && !contextBad ? 0 : 1);
}

const all = [...checked.keys()];
const problems = new Map(all.map((f) => [f, [...checked.get(f).out]]));
references(all.flatMap((f) => checked.get(f).objs), problems);
let n = 0;
for (const [file, ps] of problems) {
  report(file, ps);
  n += ps.length;
}
console.log(`validate: ${all.reduce((a, f) => a + checked.get(f).objs.length, 0)} objects in ` +
  `${all.length} files, ${n} problems`);
process.exit(n ? 1 : 0);
