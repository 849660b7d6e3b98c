// Parse an AsyncAPI document with @asyncapi/parser and print what it found as JSON.
//
//   node dev/packaging/asyncapi-validate.mjs FILE [PARSER_DIR]
//
// PARSER_DIR is where `install-tools.sh asyncapi` put the package (default
// .state/tools/asyncapi). Prints {valid, diagnostics: [{severity, code, message, path}],
// servers, channels, operations} — the parts as the parser resolved them, so a test can
// compare them with their sources — and exits 1 when a diagnostic is an error or no
// document could be built, 2 on bad usage.
import { createRequire } from 'node:module';
import path from 'node:path';

const [file, parserDir = '.state/tools/asyncapi'] = process.argv.slice(2);
if (!file) {
  console.error('usage: asyncapi-validate.mjs FILE [PARSER_DIR]');
  process.exit(2);
}
// Loaded from the tools cache, not from a node_modules next to this script.
const require = createRequire(path.resolve(parserDir, 'package.json'));
const { Parser, fromFile, DiagnosticSeverity } = require('@asyncapi/parser');

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'information',
  [DiagnosticSeverity.Hint]: 'hint',
};

function message(m) {
  const kafka = m.bindings().get('kafka');
  return {
    contentType: m.contentType() ?? null,
    payload: m.hasPayload() ? m.payload().json() : null,
    headers: m.hasHeaders() ? m.headers().json() : null,
    key: kafka?.value()?.key ?? null,
  };
}

function byId(collection, describe) {
  return Object.fromEntries(collection.all().map((item) => [item.id(), describe(item)]));
}

const { document, diagnostics } = await fromFile(new Parser(), path.resolve(file)).parse();
const report = diagnostics.map((d) => ({
  severity: SEVERITY[d.severity] ?? String(d.severity),
  code: d.code,
  message: d.message,
  path: d.path,
}));
const valid = document !== undefined && !report.some((d) => d.severity === 'error');
const out = { valid, diagnostics: report, servers: {}, channels: {}, operations: {} };
if (document) {
  out.servers = byId(document.servers(), (s) => ({
    host: s.host(),
    protocol: s.protocol(),
    security: s.security().flatMap((req) => req.all().map((r) => r.scheme().type())),
  }));
  out.channels = byId(document.channels(), (c) => ({
    address: c.address(),
    messages: byId(c.messages(), message),
  }));
  out.operations = byId(document.operations(), (o) => ({
    action: o.action(),
    channels: o.channels().all().map((c) => c.address()),
    messages: o.messages().all().map((m) => m.id()),
    reply: o.reply()?.channel()?.address() ?? null,
    groupId: o.bindings().get('kafka')?.value()?.groupId ?? null,
  }));
}
console.log(JSON.stringify(out, null, 2));
process.exit(valid ? 0 : 1);
