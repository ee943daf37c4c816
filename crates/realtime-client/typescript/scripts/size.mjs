// Prints the size of the minified bundle, and of it gzipped.
import { gzipSync } from "node:zlib";
import { bundle } from "./bundle.mjs";

const code = Buffer.from(await bundle());
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
console.log(`@realtime/client bundle: ${kib(code.length)} minified (${code.length} bytes), ${kib(gzipSync(code).length)} gzipped`);
