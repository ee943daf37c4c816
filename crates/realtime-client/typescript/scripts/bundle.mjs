// The package as one minified ES module, the way a bundler would ship it to a browser:
// used by the browser tests (the page loads exactly this) and by scripts/size.mjs.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));

/** The bundle of dist/index.js (run `tsc -p tsconfig.json` first), as text. */
export async function bundle() {
  const result = await build({
    entryPoints: [join(here, "../dist/index.js")],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
  });
  return result.outputFiles[0].text;
}
