/**
 * Reads the cluster secret (`--cluster-secret-file FILE`): the key that authenticates change
 * batches (batchMac.ts). The key is the file's bytes with trailing line breaks removed, so that
 * `head -c 32 /dev/urandom | base64 > FILE` and an editor's final newline give the same key on
 * every node. It must be at least 16 bytes; at most 4096 bytes are read, so a wrong path (a
 * device, a huge file) fails at once instead of filling memory.
 *
 * A file that group or others may access is used, with a warning (like ssh's for private keys):
 * refusing would stop a tracker over a mode an operator set on purpose. Nothing here ever puts the
 * secret's bytes into a message.
 */
import { fileErrorText } from "../fileErrors.ts";

export const MIN_SECRET_BYTES = 16;
export const MAX_SECRET_BYTES = 4096;

export type ClusterSecret = {
  key: Uint8Array;
  /** One line to log (the file's mode is too open), or null. */
  warning: string | null;
} | { error: string };

/** Reads and checks the secret file; every problem is one line in `error`. */
export async function readClusterSecret(path: string): Promise<ClusterSecret> {
  const where = `--cluster-secret-file ${path}`;
  let bytes: Uint8Array;
  let mode: number | null;
  try {
    using file = await Deno.open(path, { read: true });
    const info = await file.stat();
    if (!info.isFile) return { error: `${where}: not a regular file` };
    mode = info.mode;
    // One byte past the limit tells a file that is too long from one that fits exactly.
    const buffer = new Uint8Array(MAX_SECRET_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const n = await file.read(buffer.subarray(length));
      if (n === null) break;
      length += n;
    }
    if (length > MAX_SECRET_BYTES) {
      return { error: `${where}: longer than ${MAX_SECRET_BYTES} bytes` };
    }
    bytes = buffer.subarray(0, length);
  } catch (error) {
    return { error: `${where}: ${fileErrorText(error)}` };
  }
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  if (end < MIN_SECRET_BYTES) {
    return {
      error: `${where}: the secret must be at least ${MIN_SECRET_BYTES} bytes (it has ${end}); ` +
        "make one with: head -c 32 /dev/urandom | base64 > FILE",
    };
  }
  const key = bytes.slice(0, end);
  bytes.fill(0);
  const open = mode === null ? 0 : mode & 0o077;
  const warning = open === 0 ? null : `cluster: secret file ${path} is accessible to group or ` +
    `others (mode ${(mode! & 0o777).toString(8).padStart(4, "0")}); chmod 600 it`;
  return { key, warning };
}
