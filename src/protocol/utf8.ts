/**
 * An incremental UTF-8 validator (RFC 3629: shortest forms only, no surrogates, nothing above
 * U+10FFFF) whose state fits in one number, so a WebSocket text message can be checked frame by
 * frame and chunk by chunk as its payload is unmasked, with a sequence split across fragments
 * carried over, and refused at the first bad byte rather than after the whole message arrived.
 *
 * `TextDecoder` with `fatal: true` validates too, but only a whole buffer (or with `stream: true`,
 * by decoding into strings we would throw away), and reports a bad byte by throwing.
 */

/** The state at a character boundary: what a complete, valid text ends in. */
export const UTF8_COMPLETE = 0;
/** Returned once a byte cannot continue any valid text. */
export const UTF8_INVALID = -1;

/**
 * Validates bytes[start, end) following `state` (UTF8_COMPLETE at the start of a text). Returns the
 * state after them: UTF8_COMPLETE, UTF8_INVALID, or a positive number meaning "inside a
 * character" (feed it to the next call; at the end of the text it means a truncated character).
 */
export function utf8Step(bytes: Uint8Array, start: number, end: number, state: number): number {
  if (state < 0) return UTF8_INVALID;
  // A state packs the continuation bytes still needed (bits 0-1) and the range the next one must
  // fall in (bits 2-9, 10-17): the second byte after E0, ED, F0 and F4 has a narrower range, which
  // is what rules out overlong forms, surrogates and code points past U+10FFFF.
  let need = state & 3;
  let lo = (state >>> 2) & 0xff;
  let hi = state >>> 10;
  let i = start;
  while (i < end) {
    if (need === 0) {
      // ASCII runs (nearly all of a JSON message) take this tight loop.
      while (i < end && bytes[i] < 0x80) i++;
      if (i === end) break;
      const b = bytes[i++];
      if (b < 0xc2) return UTF8_INVALID; // a continuation byte, or an overlong 2-byte lead
      if (b < 0xe0) {
        need = 1;
        lo = 0x80;
        hi = 0xbf;
      } else if (b < 0xf0) {
        need = 2;
        lo = b === 0xe0 ? 0xa0 : 0x80;
        hi = b === 0xed ? 0x9f : 0xbf;
      } else if (b < 0xf5) {
        need = 3;
        lo = b === 0xf0 ? 0x90 : 0x80;
        hi = b === 0xf4 ? 0x8f : 0xbf;
      } else {
        return UTF8_INVALID;
      }
    } else {
      const b = bytes[i++];
      if (b < lo || b > hi) return UTF8_INVALID;
      need--;
      lo = 0x80;
      hi = 0xbf;
    }
  }
  return need === 0 ? UTF8_COMPLETE : need | (lo << 2) | (hi << 10);
}

/** True if bytes[start, end) is complete, valid UTF-8. */
export function isUtf8(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
  return utf8Step(bytes, start, end, UTF8_COMPLETE) === UTF8_COMPLETE;
}
