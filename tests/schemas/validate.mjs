// Validates the objects in a JSON file (an array) against the published schemas of kinds
// kubernetes-validate does not know: Gateway API's and cert-manager's (from
// @kubernetes-models/gateway-api and @kubernetes-models/cert-manager, generated from their CRDs). Prints one line per object; exits 1 on the first
// invalid one, 2 on a kind it has no schema for.
import { readFileSync } from "node:fs";
import { TLSRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/TLSRoute";
import { Certificate } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate";

const models = { "gateway.networking.k8s.io/v1/TLSRoute": TLSRoute, "cert-manager.io/v1/Certificate": Certificate };
const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const obj of objects) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const Model = models[key];
  if (!Model) {
    console.error(`no published schema here for ${key}`);
    process.exit(2);
  }
  try {
    new Model(obj).validate();
    console.log(`${key} ${obj.metadata.name}: valid`);
  } catch (e) {
    console.error(`${key} ${obj.metadata.name}: ${e.message}`);
    process.exit(1);
  }
}
