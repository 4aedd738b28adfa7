// Validates KEDA ScaledObjects against KEDA's CRD schema, as compiled into the npm package
// @kubernetes-models/keda. Called by scripts/validate_deploy.py:
//   node validate_keda.mjs NODE_MODULES_DIR < objects.json      (a JSON array of ScaledObjects)
// Prints one line per object and exits 1 if any is invalid.
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { readFileSync } from "node:fs";

const modules = process.argv[2];
const entry = join(modules, "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject.js");
const { ScaledObject } = await import(pathToFileURL(entry).href);

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const object of objects) {
  const name = object?.metadata?.name ?? "(unnamed)";
  try {
    new ScaledObject(object).validate();
    console.log(`ok   ScaledObject/${name}`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ScaledObject/${name}: ${error.message}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
