// Your backend issues the token: the API key stays on this server, and the page asks it
// for a token that says who the user is and what they may do. Build the package first
// (`npm run build`, or `cargo xtask clients`), then:
//   REALTIME_URL=http://127.0.0.1:8080 REALTIME_API_KEY=ifr_pk_… node examples/backend.mjs
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { RealtimeClient } from "@realtime/client";

const realtime = new RealtimeClient({ baseUrl: process.env.REALTIME_URL, apiKey: process.env.REALTIME_API_KEY });
await realtime.channelCreate({ name: "room-42", type: "presence" });

const server = createServer(async (request, response) => {
  const path = new URL(request.url, "http://localhost").pathname;
  try {
    if (path === "/realtime-token") {
      // A real app checks its own session here, and takes the user's id and rooms from it.
      const user = `guest-${Math.random().toString(36).slice(2, 8)}`;
      const token = await realtime.tokenIssue({
        client_id: user, channels: ["room-42"], capabilities: ["subscribe", "presence"], ttl_seconds: 600,
      });
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(token));
    } else if (/^\/client\/[\w/-]+\.js$/.test(path)) { // the package's ES modules, for the page
      const code = await readFile(new URL(`../dist/${path.slice("/client/".length)}`, import.meta.url));
      response.writeHead(200, { "content-type": "text/javascript" }).end(code);
    } else {
      response.writeHead(200, { "content-type": "text/html" }).end(await readFile(new URL("index.html", import.meta.url)));
    }
  } catch (error) {
    response.writeHead(502, { "content-type": "text/plain" }).end(String(error));
  }
});
server.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  console.log(`open http://127.0.0.1:${server.address().port}`);
});
