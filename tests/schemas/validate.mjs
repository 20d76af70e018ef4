// Validates the objects in a JSON file (an array) against the published schemas of kinds
// kubernetes-validate does not know: Gateway API's and cert-manager's (from
// @kubernetes-models/gateway-api and @kubernetes-models/cert-manager, generated from their
// CRDs) and OpenShift's Route (from OpenShift's OpenAPI document, which openshift-rest-client
// ships, checked with ajv). Prints one line per object; exits 1 on the first invalid one, 2 on
// a kind it has no schema for.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import Ajv from "ajv";
import { TLSRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/TLSRoute";
import { Certificate } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate";

// An object with a validate() that throws, for a definition of OpenShift's OpenAPI document.
// Strict as kubeconform's --strict: a field the schema does not name is an error. `status` is
// written by the server: the document lists it as required, the API does not require it.
function openshift(definition) {
  const url = new URL("./node_modules/openshift-rest-client/lib/specs/openshift-openapi-spec.json.gz", import.meta.url);
  const document = JSON.parse(gunzipSync(readFileSync(url)));
  const definitions = structuredClone(document.definitions);
  for (const schema of Object.values(definitions)) {
    if (schema.properties) {
      schema.additionalProperties = false;
    }
  }
  const top = definitions[definition];
  top.required = (top.required || []).filter((field) => field !== "status");
  const check = new Ajv({ strict: false, allErrors: true, validateFormats: false })
    .compile({ $ref: `#/definitions/${definition}`, definitions });
  return class {
    constructor(obj) {
      this.obj = obj;
    }
    validate() {
      if (!check(this.obj)) {
        throw new Error(check.errors.map((e) => `${e.instancePath || "/"} ${e.message}`).join("; "));
      }
    }
  };
}

const models = {
  "gateway.networking.k8s.io/v1/TLSRoute": () => TLSRoute,
  "cert-manager.io/v1/Certificate": () => Certificate,
  "route.openshift.io/v1/Route": () => openshift("com.github.openshift.api.route.v1.Route"),
};
const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const obj of objects) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  if (!models[key]) {
    console.error(`no published schema here for ${key}`);
    process.exit(2);
  }
  const Model = models[key]();
  try {
    new Model(obj).validate();
    console.log(`${key} ${obj.metadata.name}: valid`);
  } catch (e) {
    console.error(`${key} ${obj.metadata.name}: ${e.message}`);
    process.exit(1);
  }
}
