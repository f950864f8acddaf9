/**
 * Whether this host has an IPv6 loopback, found once when the module loads by binding [::1]:0
 * over TCP and UDP. Hosts and containers with IPv6 turned off have none; tests that need ::1 are
 * then skipped with the reason in their name (and one line on the console) instead of failing.
 *
 * ```ts
 * Deno.test({ ...needsIpv6("HTTP over ::1"), fn: async () => {...} });
 * await t.step({ ...needsIpv6("IPv6: announce"), fn: async () => {...} });
 * ```
 */

/** Why ::1 cannot be used here, or null when it can. */
export const ipv6Missing: string | null = probe();

if (ipv6Missing !== null) {
  console.log(`IPv6 tests skipped: ${ipv6Missing}`);
}

function probe(): string | null {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    Deno.listenDatagram({ transport: "udp", hostname: "::1", port: 0 }).close();
    return null;
  } catch (error) {
    return `cannot bind [::1]:0 (${(error as Error).name}: ${(error as Error).message})`;
  }
}

/** Deno.test / t.step options for a test that needs ::1: ignored, with the reason in its name,
 * where ::1 is missing. */
export function needsIpv6(name: string): { name: string; ignore: boolean } {
  return ipv6Missing === null
    ? { name, ignore: false }
    : { name: `${name} (skipped: ${ipv6Missing})`, ignore: true };
}
