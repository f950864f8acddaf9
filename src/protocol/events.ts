/** Announce events, numbered as in BEP 15; HTTP's `event=` strings map onto the same numbers. */

export const EVENT_NONE = 0;
export const EVENT_COMPLETED = 1;
export const EVENT_STARTED = 2;
export const EVENT_STOPPED = 3;

export type AnnounceEvent = 0 | 1 | 2 | 3;
