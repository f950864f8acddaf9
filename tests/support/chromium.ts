/**
 * A headless Chromium for tests, driven over the Chrome DevTools Protocol with Deno's own
 * WebSocket (no npm package): start Debian's `chromium` with a throwaway profile, open one page,
 * navigate, evaluate expressions, and take screenshots, while collecting every URL the page
 * requested and every console error, uncaught exception and browser log error.
 *
 * `withChromium` always kills the browser and removes the profile, whatever the test did; where no
 * chromium is installed it runs nothing and returns undefined (`chromiumSkipReason()` says why in
 * one line, for `Deno.test({ ignore })`).
 */
import { spawnChild } from "./child.ts";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** The browser binary, or null. */
export function chromiumPath(): string | null {
  for (const path of CANDIDATES) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not there */ }
  }
  return null;
}

/** Why browser tests cannot run here (one line), or null if they can. */
export function chromiumSkipReason(): string | null {
  return chromiumPath() === null
    ? `no chromium (looked for ${CANDIDATES.join(", ")}; apt-get install chromium)`
    : null;
}

/** Flags for a quiet, deterministic headless browser that talks to nothing on its own. */
const FLAGS = [
  "--headless",
  "--no-sandbox", // tests run as root in CI containers
  "--disable-gpu",
  "--remote-debugging-port=0",
  "--remote-allow-origins=*",
  "--window-size=1280,900",
  "--hide-scrollbars",
  "--mute-audio",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-default-apps",
  "--disable-extensions",
  "--disable-sync",
  "--disable-domain-reliability",
  "--disable-client-side-phishing-detection",
  "--disable-breakpad",
  "--metrics-recording-only",
  "--password-store=basic",
  "--use-mock-keychain",
  "--force-color-profile=srgb",
  "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
];

interface Pending {
  resolve(result: Record<string, unknown>): void;
  reject(error: Error): void;
}

/** One page of the browser, over its DevTools WebSocket. */
export class ChromiumPage {
  /** Every URL the page asked for (documents, scripts, styles, fetches, images). */
  readonly requests: string[] = [];
  /** Console errors and assertions, uncaught exceptions, browser log errors (failed loads, CSP). */
  readonly errors: string[] = [];
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Map<string, Set<(params: Record<string, unknown>) => void>>();
  #nextId = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => this.#receive(String(event.data));
    socket.onclose = () => {
      for (const pending of this.#pending.values()) pending.reject(new Error("CDP socket closed"));
      this.#pending.clear();
    };
  }

  static async open(webSocketUrl: string, timeoutMs: number): Promise<ChromiumPage> {
    const socket = new WebSocket(webSocketUrl);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.onopen = () => resolve();
        socket.onerror = () => reject(new Error(`cannot open ${webSocketUrl}`));
      }),
      timeoutMs,
      "DevTools WebSocket",
    );
    const page = new ChromiumPage(socket);
    page.#on("Network.requestWillBeSent", (p) => {
      page.requests.push(String((p.request as { url: string }).url));
    });
    page.#on("Runtime.consoleAPICalled", (p) => {
      if (p.type !== "error" && p.type !== "assert") return;
      const args = p.args as { value?: unknown; description?: string }[];
      page.errors.push(`console.${p.type}: ${args.map((a) => a.description ?? a.value).join(" ")}`);
    });
    page.#on("Runtime.exceptionThrown", (p) => {
      const details = p.exceptionDetails as { text: string; exception?: { description?: string } };
      page.errors.push(`exception: ${details.exception?.description ?? details.text}`);
    });
    page.#on("Log.entryAdded", (p) => {
      const entry = p.entry as { level: string; text: string; url?: string };
      if (entry.level === "error") page.errors.push(`log: ${entry.text} ${entry.url ?? ""}`);
    });
    for (const domain of ["Page", "Runtime", "Network", "Log"]) await page.send(`${domain}.enable`);
    return page;
  }

  /** Sends a CDP command and resolves with its result (rejects on a protocol error). */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    this.#socket.send(JSON.stringify({ id, method, params }));
    return withTimeout(reply, 30_000, method).finally(() => this.#pending.delete(id));
  }

  #on(event: string, listener: (params: Record<string, unknown>) => void): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, set = new Set());
    set.add(listener);
    return () => set.delete(listener);
  }

  #receive(text: string): void {
    const message = JSON.parse(text) as {
      id?: number;
      method?: string;
      params?: Record<string, unknown>;
      result?: Record<string, unknown>;
      error?: { message: string };
    };
    if (message.id !== undefined) {
      const pending = this.#pending.get(message.id);
      if (message.error) pending?.reject(new Error(`CDP: ${message.error.message}`));
      else pending?.resolve(message.result ?? {});
      return;
    }
    if (message.method === undefined) return;
    for (const listener of this.#listeners.get(message.method) ?? []) {
      listener(message.params ?? {});
    }
  }

  /** Loads `url` and waits for its load event. */
  async navigate(url: string, timeoutMs = 20_000): Promise<void> {
    let off = () => {};
    const loaded = new Promise<void>((resolve) => {
      off = this.#on("Page.loadEventFired", () => resolve());
    });
    try {
      const result = await this.send("Page.navigate", { url });
      if (result.errorText) throw new Error(`navigate ${url}: ${result.errorText}`);
      await withTimeout(loaded, timeoutMs, `load of ${url}`);
    } finally {
      off();
    }
  }

  /** The value of `expression` in the page (promises awaited); a thrown error rejects. */
  async evaluate<T>(expression: string): Promise<T> {
    const result = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    const details = result.exceptionDetails as
      | { text: string; exception?: { description?: string } }
      | undefined;
    if (details) {
      throw new Error(`evaluate: ${details.exception?.description ?? details.text}`);
    }
    return (result.result as { value: T }).value;
  }

  /** Evaluates `expression` every 100 ms until it is truthy, and returns that value. */
  async waitFor<T>(expression: string, timeoutMs: number, what: string): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    let last: unknown;
    while (performance.now() < deadline) {
      last = await this.evaluate<T>(expression);
      if (last) return last as T;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no ${what} within ${timeoutMs} ms (last value ${JSON.stringify(last)})`);
  }

  /** Saves a PNG of the whole page (not just the window) to `path`. */
  async screenshot(path: string): Promise<void> {
    const result = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
    });
    const binary = atob(String(result.data));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    await Deno.writeFile(path, bytes);
  }

  close(): void {
    try {
      this.#socket.close();
    } catch { /* already closed */ }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts chromium, hands `test` its page, and always closes the page, kills the browser and
 * removes its profile. Without chromium it prints the one-line reason and returns undefined.
 */
export async function withChromium<T>(
  test: (page: ChromiumPage) => Promise<T>,
  startTimeoutMs = 30_000,
): Promise<T | undefined> {
  const path = chromiumPath();
  if (path === null) {
    console.log(`skipped: ${chromiumSkipReason()}`);
    return undefined;
  }
  const profile = await Deno.makeTempDir({ prefix: "otter-chromium-" });
  const browser = spawnChild(path, [...FLAGS, `--user-data-dir=${profile}`, "about:blank"], {
    name: "chromium",
  });
  let page: ChromiumPage | undefined;
  try {
    const port = await devToolsPort(browser, startTimeoutMs);
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
      type: string;
      webSocketDebuggerUrl: string;
    }[];
    const target = targets.find((t) => t.type === "page");
    if (target === undefined) throw new Error("chromium opened no page");
    page = await ChromiumPage.open(target.webSocketDebuggerUrl, startTimeoutMs);
    return await test(page);
  } finally {
    page?.close();
    await browser.stop("SIGTERM", 3000);
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/** The port from chromium's "DevTools listening on ws://127.0.0.1:PORT/..." stderr line. */
async function devToolsPort(
  browser: ReturnType<typeof spawnChild>,
  timeoutMs: number,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let exited = false;
  browser.exited.then(() => exited = true);
  while (performance.now() < deadline && !exited) {
    const match = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(browser.stderr);
    if (match) return Number(match[1]);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`chromium did not start (${exited ? "exited" : "timeout"}):\n${browser.log()}`);
}
