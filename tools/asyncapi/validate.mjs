// Validates AsyncAPI documents with the official AsyncAPI parser (@asyncapi/parser), as
// `asyncapi validate` does: prints every diagnostic and exits 1 when any is an error.
//
//   node tools/asyncapi/validate.mjs api/asyncapi.yaml
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Parser, fromFile } from '@asyncapi/parser';

const require = createRequire(import.meta.url);
const { version } = require('@asyncapi/parser/package.json');
const severities = ['error', 'warning', 'info', 'hint'];

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...');
  process.exit(2);
}
const parser = new Parser();
let failed = false;
for (const file of files) {
  await readFile(file); // a clear error for a missing file
  const { document, diagnostics } = await fromFile(parser, path.resolve(file)).parse();
  for (const d of diagnostics) {
    const where = d.path && d.path.length ? d.path.join('.') : '(document)';
    console.log(`${file}: ${severities[d.severity] ?? d.severity}: ${where}: ${d.message} [${d.code}]`);
  }
  const errors = diagnostics.filter((d) => d.severity === 0).length;
  if (!document || errors > 0) {
    failed = true;
    console.log(`${file}: INVALID (${errors} error(s)) — @asyncapi/parser ${version}`);
  } else {
    console.log(`${file}: valid AsyncAPI ${document.version()} — @asyncapi/parser ${version}, ${diagnostics.length} warning(s)/hint(s)`);
  }
}
process.exit(failed ? 1 : 0);
