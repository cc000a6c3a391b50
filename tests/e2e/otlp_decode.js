#!/usr/bin/env node
// Decode raw (not gzipped) OTLP/HTTP protobuf bodies with the OpenTelemetry project's own
// generated code (tools/otlp-decoder.sh installs it), so llmtap's encoder is checked by a
// decoder it did not write.
//
//   node otlp_decode.js [--strict] traces|metrics|logs [FILE...]
//                                         (no FILE: file names on stdin, one a line)
//
// Prints one JSON array, one Export*ServiceRequest object per file, in order. The objects
// follow the OTLP JSON mapping: camelCase field names, 64-bit integers as decimal strings,
// bytes (traceId, spanId, ...) as lowercase hex, enums by name, NaN/Infinity as strings;
// every field is present, with its default when unset (null for a message; a oneof only
// when set, named by a virtual field: AnyValue "value": "intValue", NumberDataPoint
// "value": "asDouble", optional "_sum": "sum"). A body that does not decode exits 1 with
// the file named on stderr.
// The generated code predates OTLP 1.1; this script reads the two fields 1.1 added,
// Span.flags and Span.Link.flags (fixed32, 0 when absent), itself. Any other field it does
// not know (Metric.metadata of 1.2, say) is skipped with a warning on stderr naming the
// message type and field number; --strict makes that an error.
"use strict";
const fs = require("fs");
const path = require("path");

const DIR = process.env.LLMTAP_OTLP_DECODER || "/var/cache/llmtap/otlp-decoder-0.57.2";
const ROOT_JS = path.join(DIR, "node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js");
const TYPES = {
  traces: "trace.v1.ExportTraceServiceRequest",
  metrics: "metrics.v1.ExportMetricsServiceRequest",
  logs: "logs.v1.ExportLogsServiceRequest",
};

const strict = process.argv[2] === "--strict";
const [signal, ...args] = process.argv.slice(strict ? 3 : 2);
if (!TYPES[signal]) {
  console.error("usage: node otlp_decode.js [--strict] traces|metrics|logs [FILE...]");
  process.exit(2);
}
if (!fs.existsSync(ROOT_JS)) {
  console.error(`otlp_decode: no decoder at ${ROOT_JS}; run tools/otlp-decoder.sh`);
  process.exit(2);
}
const proto = require(ROOT_JS).opentelemetry.proto;
const Type = TYPES[signal].split(".").reduce((o, k) => o[k], proto.collector);

// Fields newer than the generated code, all fixed32: type -> field number -> name.
const NEWER = { "trace.v1.Span": { 16: "flags" }, "trace.v1.Span.Link": { 6: "flags" } };
const EXTRA = Symbol("newer fields");
const decoding = []; // [type name, newer fields read] of the messages being decoded, innermost last
let unknown = [];
(function wrap(ns, prefix) { // every generated type's decode (and toObject, for NEWER ones)
  for (const [key, T] of Object.entries(ns)) {
    if (typeof T === "function" && T.decode) {
      const name = prefix + key, { decode, toObject } = T;
      T.decode = function (reader, length) {
        decoding.push([name, {}]);
        try {
          return Object.assign(decode.call(T, reader, length), { [EXTRA]: decoding.at(-1)[1] });
        } finally {
          decoding.pop();
        }
      };
      if (NEWER[name]) {
        const zeros = Object.fromEntries(Object.values(NEWER[name]).map((f) => [f, 0]));
        T.toObject = (m, options) => Object.assign(toObject.call(T, m, options), zeros, m[EXTRA]);
      }
      wrap(T, name + ".");
    } else if (T && typeof T === "object") {
      wrap(T, prefix + key + ".");
    }
  }
})(proto, "");
// A generated decoder calls reader.skipType() for a field it does not know, right after
// reading the field's tag with reader.uint32(): note the tag, read or report the field.
const { Reader } = require(path.join(DIR, "node_modules/protobufjs/minimal"));
const { uint32, skipType } = Reader.prototype;
Reader.prototype.uint32 = function () { return (this.lastTag = uint32.call(this)); };
Reader.prototype.skipType = function (wireType) {
  const [type, extra] = decoding.at(-1) || ["?", {}];
  const field = this.lastTag >>> 3, newer = (NEWER[type] || {})[field];
  if ((this.lastTag & 7) === wireType) { // not a field inside a skipped group
    if (newer && wireType === 5) {
      extra[newer] = this.fixed32();
      return this;
    }
    unknown.push(`field ${field} (wire type ${wireType}) of ${type} at byte ${this.pos}`);
  }
  return skipType.call(this, wireType);
};

const files = args.length ? args : fs.readFileSync(0, "utf8").split("\n").filter(Boolean);

const options = { longs: String, enums: String, defaults: true, oneofs: true, json: true };
const out = files.map((file) => {
  try {
    unknown = [];
    const object = Type.toObject(Type.decode(fs.readFileSync(file)), options);
    if (unknown.length) {
      console.error(`otlp_decode: ${file}: skipped unknown ${unknown.join(", ")}`);
      if (strict) process.exit(1);
    }
    return object;
  } catch (e) {
    console.error(`otlp_decode: ${file}: ${e.message}`);
    process.exit(1);
  }
});
// Bytes fields are Buffers here; write them as hex (the holder's value, before Buffer.toJSON).
process.stdout.write(JSON.stringify(out, function (key, value) {
  const raw = this[key];
  return raw instanceof Uint8Array ? Buffer.from(raw).toString("hex") : value;
}) + "\n");
