/**
 * JSON (RFC 8259) read straight from UTF-8 bytes, without making objects or strings: a validating
 * skip over any value, the fields of an object as byte ranges of their values, and readers for the
 * few kinds of value a WebTorrent message needs (a one-byte string, a number, a string compared
 * with a constant, a string's length). The WebTorrent tracker reads its messages with these
 * (wtMessage.ts), so an SDP stays the bytes it arrived as and is copied, still JSON, into the
 * frames that forward it.
 *
 * What is valid is exactly what JSON.parse accepts: the four whitespace bytes, strings with no raw
 * control character and only the nine escapes (\uXXXX with four hex digits), numbers in the
 * grammar's form, true/false/null, any depth of nesting (walked with an explicit stack, not
 * recursion). The bytes must be valid UTF-8 (the WebSocket frame reader checks that first). A
 * "token" is a value's bytes: a string's include its quotes.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Container kinds on the skip stack. */
const IN_ARRAY = 1;
const IN_OBJECT = 2;
/** Deepest nesting: a 64 KiB message cannot open more than 65536 containers. */
const MAX_DEPTH = 65536;
const stack = new Uint8Array(MAX_DEPTH);
const utf8 = new TextDecoder();
/** 1 for the bytes that are themselves inside a string: not a control character, `"` or `\`. */
const STANDS_FOR_ITSELF = new Uint8Array(256).fill(1, 0x20);
STANDS_FOR_ITSELF[QUOTE] = 0;
STANDS_FOR_ITSELF[BACKSLASH] = 0;

/** The index of the first byte at or after i that is not JSON whitespace (or end). */
export function skipWhitespace(b: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
}

// Ends of the long strings skipped in the current input, by start: a reader that walks part of a
// message twice (wtMessage.ts: the whole for validity, then the offers) skips each SDP once. A
// remembered string is at least MEMO_MIN bytes, so two start at least MEMO_MIN apart and
// `start / MEMO_MIN` is a slot of its own (in a message of up to MEMO_SLOTS × MEMO_MIN bytes;
// past that, slots are shared and a string found in another's slot is scanned again). A slot
// counts for the input whose number it carries; `forgetStrings` starts a new input.
const MEMO_MIN = 64;
const MEMO_SLOTS = 1024;
const memoInputs = new Int32Array(MEMO_SLOTS);
const memoStarts = new Int32Array(MEMO_SLOTS);
const memoEnds = new Int32Array(MEMO_SLOTS);
let memoInput: Uint8Array | null = null;
let memoNumber = 0;

/** Starts a new input for the memory of long strings (call before reading another message). */
export function forgetStrings(input: Uint8Array): void {
  memoInput = input;
  memoNumber = (memoNumber + 1) | 0;
}

/** The end of the string token starting with the quote at b[i], or -1 if it is not valid. */
export function skipString(b: Uint8Array, i: number, end: number): number {
  const slot = (i / MEMO_MIN) & (MEMO_SLOTS - 1);
  const remembered = b === memoInput;
  if (
    remembered && memoInputs[slot] === memoNumber && memoStarts[slot] === i &&
    memoEnds[slot] <= end
  ) {
    return memoEnds[slot];
  }
  const stringEnd = scanString(b, i, end);
  if (remembered && stringEnd - i >= MEMO_MIN) {
    memoInputs[slot] = memoNumber;
    memoStarts[slot] = i;
    memoEnds[slot] = stringEnd;
  }
  return stringEnd;
}

function scanString(b: Uint8Array, i: number, end: number): number {
  i++;
  for (;;) {
    // The common run first: bytes that stand for themselves.
    while (i < end && STANDS_FOR_ITSELF[b[i]] === 1) i++;
    if (i >= end) return -1;
    const c = b[i];
    if (c < 0x20) return -1;
    if (c === QUOTE) return i + 1;
    i = skipEscape(b, i, end);
    if (i < 0) return -1;
  }
}

/** The end of the escape at b[i] (a backslash), or -1. */
function skipEscape(b: Uint8Array, i: number, end: number): number {
  if (i + 1 >= end) return -1;
  switch (b[i + 1]) {
    case QUOTE:
    case BACKSLASH:
    case 0x2f: // /
    case 0x62: // b
    case 0x66: // f
    case 0x6e: // n
    case 0x72: // r
    case 0x74: // t
      return i + 2;
    case 0x75: // u
      return i + 5 < end && isHex(b[i + 2]) && isHex(b[i + 3]) && isHex(b[i + 4]) &&
          isHex(b[i + 5])
        ? i + 6
        : -1;
    default:
      return -1;
  }
}

function skipDigits(b: Uint8Array, i: number, end: number): number {
  while (i < end && b[i] >= 0x30 && b[i] <= 0x39) i++;
  return i;
}

/** The end of the number token at b[i], or -1. */
function skipNumber(b: Uint8Array, i: number, end: number): number {
  if (b[i] === 0x2d) i++; // -
  if (i >= end) return -1;
  if (b[i] === 0x30) i++;
  else if (b[i] >= 0x31 && b[i] <= 0x39) i = skipDigits(b, i + 1, end);
  else return -1;
  if (i < end && b[i] === 0x2e) { // .
    const from = i + 1;
    i = skipDigits(b, from, end);
    if (i === from) return -1;
  }
  if (i < end && (b[i] | 0x20) === 0x65) { // e E
    i++;
    if (i < end && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    const from = i;
    i = skipDigits(b, from, end);
    if (i === from) return -1;
  }
  return i;
}

/** The end of `word` (ASCII) at b[i], or -1. */
function skipWord(b: Uint8Array, i: number, end: number, word: string): number {
  if (i + word.length > end) return -1;
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) return -1;
  return i + word.length;
}

/** The end of a scalar token (string, number, literal) at b[i], or -1. */
function skipScalar(b: Uint8Array, i: number, end: number): number {
  switch (b[i]) {
    case QUOTE:
      return skipString(b, i, end);
    case 0x74:
      return skipWord(b, i, end, "true");
    case 0x66:
      return skipWord(b, i, end, "false");
    case 0x6e:
      return skipWord(b, i, end, "null");
    default:
      return skipNumber(b, i, end);
  }
}

/**
 * The end of the value token that starts at b[i] (no whitespace before it), or -1 if it is not
 * valid JSON. Objects and arrays are walked with an explicit stack, so no input can overflow
 * the call stack.
 */
export function skipValue(b: Uint8Array, i: number, end: number): number {
  if (i >= end) return -1;
  const first = b[i];
  if (first !== 0x7b && first !== 0x5b) return skipScalar(b, i, end);
  let depth = 0;
  // Each turn: i is at the start of a value; open it, or skip it and close what it ends.
  for (;;) {
    const c = b[i];
    if (c === 0x7b || c === 0x5b) { // { [
      if (depth === MAX_DEPTH) return -1;
      stack[depth++] = c === 0x7b ? IN_OBJECT : IN_ARRAY;
      i = skipWhitespace(b, i + 1, end);
      if (i >= end) return -1;
      if (b[i] === (c === 0x7b ? 0x7d : 0x5d)) {
        i++; // empty: closed at once
        depth--;
      } else {
        if (c === 0x7b) {
          i = skipKey(b, i, end);
          if (i < 0) return -1;
        }
        continue;
      }
    } else {
      i = skipScalar(b, i, end);
      if (i < 0) return -1;
    }
    // After a value: a comma opens the next one, a bracket closes its container.
    for (;;) {
      if (depth === 0) return i;
      i = skipWhitespace(b, i, end);
      if (i >= end) return -1;
      const inObject = stack[depth - 1] === IN_OBJECT;
      if (b[i] === 0x2c) { // ,
        i = skipWhitespace(b, i + 1, end);
        if (i >= end) return -1;
        if (inObject) {
          i = skipKey(b, i, end);
          if (i < 0) return -1;
        }
        break;
      }
      if (b[i] !== (inObject ? 0x7d : 0x5d)) return -1;
      i++;
      depth--;
    }
  }
}

/** Skips `"key" :` and the whitespace after it: the start of the value, or -1. */
function skipKey(b: Uint8Array, i: number, end: number): number {
  if (b[i] !== QUOTE) return -1;
  i = skipString(b, i, end);
  if (i < 0) return -1;
  i = skipWhitespace(b, i, end);
  if (i >= end || b[i] !== 0x3a) return -1;
  i = skipWhitespace(b, i + 1, end);
  return i < end ? i : -1;
}

/**
 * Reads the object token at b[i] (it starts with `{`): for each field whose key `keyOf` knows
 * (a number ≥ 1; 0 for the others), where its value's token is, in starts[key] and ends[key];
 * a key given twice keeps its last value, as JSON.parse does. Fields not named are -1. Returns
 * the end of the object, or -1 if it is not valid JSON.
 */
export function readObject(
  b: Uint8Array,
  i: number,
  end: number,
  keyOf: (b: Uint8Array, start: number, end: number) => number,
  starts: Int32Array,
  ends: Int32Array,
): number {
  starts.fill(-1);
  ends.fill(-1);
  i = skipWhitespace(b, i + 1, end);
  if (i >= end) return -1;
  if (b[i] === 0x7d) return i + 1;
  for (;;) {
    if (b[i] !== QUOTE) return -1;
    const keyEnd = skipString(b, i, end);
    if (keyEnd < 0) return -1;
    const key = keyOf(b, i, keyEnd);
    i = skipWhitespace(b, keyEnd, end);
    if (i >= end || b[i] !== 0x3a) return -1;
    i = skipWhitespace(b, i + 1, end);
    const valueEnd = skipValue(b, i, end);
    if (valueEnd < 0) return -1;
    if (key > 0) {
      starts[key] = i;
      ends[key] = valueEnd;
    }
    i = skipWhitespace(b, valueEnd, end);
    if (i >= end) return -1;
    if (b[i] === 0x7d) return i + 1;
    if (b[i] !== 0x2c) return -1;
    i = skipWhitespace(b, i + 1, end);
    if (i >= end) return -1;
  }
}

/**
 * The UTF-16 unit at b[i] inside a valid string token, packed as unit + 65536 × its byte length
 * (so that `>>> 16` is the step to the next one); a 4-byte UTF-8 character is two units, of
 * which this gives the first (its high surrogate) with a step of 4; `lowSurrogate` gives the
 * second.
 */
function unitAt(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c === BACKSLASH) {
    switch (b[i + 1]) {
      case 0x62:
        return 0x08 + (2 << 16);
      case 0x66:
        return 0x0c + (2 << 16);
      case 0x6e:
        return 0x0a + (2 << 16);
      case 0x72:
        return 0x0d + (2 << 16);
      case 0x74:
        return 0x09 + (2 << 16);
      case 0x75:
        return ((hexValue(b[i + 2]) << 12) | (hexValue(b[i + 3]) << 8) |
          (hexValue(b[i + 4]) << 4) | hexValue(b[i + 5])) + (6 << 16);
      default: // " \ /
        return b[i + 1] + (2 << 16);
    }
  }
  if (c < 0x80) return c + (1 << 16);
  if (c < 0xe0) return (((c & 0x1f) << 6) | (b[i + 1] & 0x3f)) + (2 << 16);
  if (c < 0xf0) {
    return (((c & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f)) + (3 << 16);
  }
  return (0xd800 + ((fourByteCodePoint(b, i) - 0x10000) >>> 10)) + (4 << 16);
}

function fourByteCodePoint(b: Uint8Array, i: number): number {
  return ((b[i] & 0x07) << 18) | ((b[i + 1] & 0x3f) << 12) | ((b[i + 2] & 0x3f) << 6) |
    (b[i + 3] & 0x3f);
}

/** The low surrogate of the 4-byte UTF-8 character at b[i]. */
function lowSurrogate(b: Uint8Array, i: number): number {
  return 0xdc00 + ((fourByteCodePoint(b, i) - 0x10000) & 0x3ff);
}

/**
 * Reads the string token b[start, end) as `count` one-byte characters (U+0000–U+00FF, JSON's
 * "binary string") into out[o, o + count); false (out partly written) if it is not a string of
 * exactly that many such characters.
 */
export function readOneByteString(
  b: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  o: number,
  count: number,
): boolean {
  if (start < 0 || b[start] !== QUOTE) return false;
  let i = start + 1;
  const last = end - 1;
  let n = 0;
  while (i < last) {
    if (n === count) return false;
    const c = b[i];
    if (c < 0x80 && c !== BACKSLASH) {
      out[o + n++] = c;
      i++;
      continue;
    }
    const unit = unitAt(b, i);
    const code = unit & 0xffff;
    if (code > 0xff) return false;
    out[o + n++] = code;
    i += unit >>> 16;
  }
  return n === count;
}

/** Whether the token b[start, end) is a string equal to `text`. */
export function stringEquals(b: Uint8Array, start: number, end: number, text: string): boolean {
  if (start < 0 || b[start] !== QUOTE) return false;
  const last = end - 1;
  let i = start + 1;
  let k = 0;
  while (i < last) {
    const unit = unitAt(b, i);
    if (k === text.length || (unit & 0xffff) !== text.charCodeAt(k++)) return false;
    if (unit >>> 16 === 4 && lowSurrogate(b, i) !== text.charCodeAt(k++)) return false;
    i += unit >>> 16;
  }
  return k === text.length;
}

/** The length in UTF-16 units (String.length) of the string token b[start, end). */
export function stringUnits(b: Uint8Array, start: number, end: number): number {
  let i = start + 1;
  const last = end - 1;
  let n = 0;
  while (i < last) {
    const step = unitAt(b, i) >>> 16;
    n += step === 4 ? 2 : 1;
    i += step;
  }
  return n;
}

/** Whether b[start, end) is the token `word` (true, false, null). */
export function isWord(b: Uint8Array, start: number, end: number, word: string): boolean {
  return start >= 0 && end - start === word.length && skipWord(b, start, end, word) === end;
}

/** Whether the token at b[start] is of the kind its first byte says. */
export function isString(b: Uint8Array, start: number): boolean {
  return start >= 0 && b[start] === QUOTE;
}

export function isArray(b: Uint8Array, start: number): boolean {
  return start >= 0 && b[start] === 0x5b;
}

export function isObject(b: Uint8Array, start: number): boolean {
  return start >= 0 && b[start] === 0x7b;
}

/**
 * The value of the number token b[start, end) as JSON.parse reads it, or NaN if the token is not
 * a number. Plain integers of up to 15 digits are read here; anything else by Number().
 */
export function readNumber(b: Uint8Array, start: number, end: number): number {
  if (start < 0) return NaN;
  const first = b[start];
  if (first !== 0x2d && (first < 0x30 || first > 0x39)) return NaN;
  const negative = first === 0x2d;
  let i = negative ? start + 1 : start;
  if (end - i <= 15) {
    let value = 0;
    for (; i < end; i++) {
      const c = b[i];
      if (c < 0x30 || c > 0x39) break;
      value = value * 10 + (c - 0x30);
    }
    if (i === end) return negative ? -value : value;
  }
  return Number(utf8.decode(b.subarray(start, end)));
}
