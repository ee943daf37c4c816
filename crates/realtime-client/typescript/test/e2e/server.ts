// The reference server as a child process: target/debug/realtime-server (built by
// `cargo xtask clients`), on a loopback port, with a SQLite file in a temporary directory
// that survives restarts.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const defaultBinary = fileURLToPath(new URL("../../../../../../target/debug/realtime-server", import.meta.url));

/** A running reference server. */
export class Server {
  #child: ChildProcess;
  readonly #dir: string;
  readonly #settings: Record<string, string>;

  private constructor(child: ChildProcess, dir: string, settings: Record<string, string>, readonly url: string, readonly apiKey: string) {
    this.#child = child;
    this.#dir = dir;
    this.#settings = settings;
  }

  /** The port it listens on; a restart keeps it, so tokens' endpoints stay right. */
  get port(): number {
    return Number(new URL(this.url).port);
  }

  /**
   * Starts a server with a fresh store and `settings` as `REALTIME_*` variables (e.g.
   * `{ GATEWAY__HEARTBEAT_TIMEOUT_SECONDS: "3" }`).
   */
  static async start(settings: Record<string, string> = {}): Promise<Server> {
    const dir = mkdtempSync(join(tmpdir(), "realtime-client-e2e-"));
    const { child, url, apiKey } = await launch(dir, { LISTEN: "127.0.0.1:0", ...settings }, true);
    return new Server(child, dir, settings, url, apiKey ?? "");
  }

  /** Stops it as an operator would (SIGTERM: sockets are closed with 4200). */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.kill("SIGTERM");
    await exited;
  }

  /** Starts it again on the same port and store. */
  async restart(): Promise<void> {
    await this.stop();
    const { child } = await launch(this.#dir, { ...this.#settings, LISTEN: `127.0.0.1:${this.port}` }, false);
    this.#child = child;
  }

  /** Stops it and removes its store. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

async function launch(dir: string, settings: Record<string, string>, firstStart: boolean) {
  // The server refuses settings it does not know, and REALTIME_SERVER_BIN (this file's
  // own) would be one: it gets no REALTIME_* variable but those given here.
  const inherited = Object.entries(process.env).filter(([key]) => !key.startsWith("REALTIME_"));
  const env: Record<string, string> = {
    ...(Object.fromEntries(inherited) as Record<string, string>),
    REALTIME_STORE: `sqlite://${join(dir, "realtime.db")}`,
    REALTIME_LOG: "warn",
  };
  for (const [key, value] of Object.entries(settings)) env[`REALTIME_${key}`] = value;
  const binary = process.env.REALTIME_SERVER_BIN ?? defaultBinary;
  const child = spawn(binary, [], { cwd: dir, env, stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  let url: string | undefined;
  let apiKey: string | undefined;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${binary} did not start within 30 s`)), 30_000);
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`${binary} exited with ${code} before listening`)));
    lines.on("line", (line) => {
      url ??= /listening on (\S+)/.exec(line)?.[1];
      apiKey ??= /dev api key: (\S+)/.exec(line)?.[1];
      if (url && (apiKey || !firstStart)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.removeAllListeners("exit");
  return { child, url: url!, apiKey };
}
