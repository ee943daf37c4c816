// How long to wait before trying again.

/**
 * Exponential backoff with jitter: a random delay between half and all of
 * `initialMs * 2^attempt`, capped at `maxMs`. Jitter keeps clients that failed together
 * (a server restart) from all coming back in the same instant; the floor of half keeps the
 * delay from collapsing to nothing.
 */
export function backoff(initialMs: number, maxMs: number, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 16));
  return ceiling / 2 + (ceiling / 2) * random();
}

/** Resolves after `ms`, or rejects with the signal's reason when it is aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const abort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}
