/**
 * The byte helpers every encoder shares: the constant parts of replies (bencode keys, HTTP status
 * lines, JSON keys) are ASCII, encoded to bytes once at module load and copied into the caller's
 * buffer per reply.
 */

/** `text`, which must be ASCII, as bytes (one per char code). */
export function ascii(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** Copies `bytes` to out[at..]; returns the offset after them. */
export function copyBytes(out: Uint8Array, at: number, bytes: Uint8Array): number {
  // A plain loop beats TypedArray.set for runs this short.
  for (let i = 0; i < bytes.length; i++) out[at + i] = bytes[i];
  return at + bytes.length;
}
