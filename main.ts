/**
 * otter's entry point: parse flags and the config file, build the one peer store, start every
 * listener, clean expired peers in small steps, reload settings and the `--https` certificate on
 * SIGHUP, and stop gracefully on SIGINT/SIGTERM.
 */
import { ConfigError, helpText, parseCommandLine } from "./src/config/config.ts";
import { Clock } from "./src/config/clock.ts";
import { startTracker } from "./src/servers/startTracker.ts";
import { VERSION } from "./src/version.ts";

/** Runs otter with `args` (the command line); resolves to its exit code. */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(args);
    // The TOML file's reader and writer (and smol-toml) load only when used: an idle process
    // that never needs them saves their RSS (docs/performance.md → Idle RSS).
    if (parsed.kind === "run" && parsed.config.config !== "") {
      parsed = (await import("./src/config/configFile.ts")).withConfigFile(parsed);
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`otter: ${e.message} (see --help)`);
      return 2;
    }
    throw e;
  }
  if (parsed.kind === "help") {
    console.log(helpText(VERSION));
    return 0;
  }
  if (parsed.kind === "version") {
    console.log(`otter ${VERSION}`);
    return 0;
  }
  if (parsed.kind === "print-config") {
    const { defaultConfigToml } = await import("./src/config/configFile.ts");
    await Deno.stdout.write(new TextEncoder().encode(defaultConfigToml()));
    return 0;
  }
  // Listen for stop signals before any listener opens: a SIGTERM right after the
  // "listening" lines must stop otter gracefully, not kill it.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => resolve();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
  const clock = new Clock();
  let running: Awaited<ReturnType<typeof startTracker>> | undefined;
  let settings = parsed.config;
  const flags = parsed.flags;
  // Without a listener SIGHUP would end the process (also during a long state restore); with no
  // --config it only logs that.
  Deno.addSignalListener("SIGHUP", async () => {
    const tracker = running;
    if (tracker === undefined) {
      console.log("config: SIGHUP while starting; ignored");
      return;
    }
    const { reloadConfig } = await import("./src/config/configFile.ts");
    const outcome = reloadConfig(settings, flags);
    const notes = outcome.ok ? tracker.tracker.applySettings(outcome.config) : [];
    settings = outcome.config;
    console.log([outcome.message, ...notes].join("; "));
    // After the settings: --tls-cert and --tls-key may name new files.
    const line = await tracker.reloadCertificate(settings);
    if (line !== null) console.log(line);
  });
  try {
    running = await startTracker(parsed.config, clock, (line) => console.log(line));
  } catch (e) {
    console.error(`otter: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
  await stopped;
  console.log("otter: stopping");
  await running.stop();
  return 0;
}

if (import.meta.main) {
  // `deno task start -- --flag` passes the `--` through; it separates nothing here.
  const args = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
  Deno.exit(await main(args));
}
