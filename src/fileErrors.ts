/**
 * What a log line or an error says when a file cannot be read, written or watched (the config
 * file, an access list, the cluster secret, the state file): a few words for the common causes,
 * else the first line of the runtime's message.
 */

/** "file not found", "permission denied", "is a directory", or the message's first line. */
export function fileErrorText(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "file not found";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "is a directory";
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}
