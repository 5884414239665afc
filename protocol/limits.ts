/** Limits the wire shows to every client (PROTOCOL.md). */

/**
 * Most peer entries in one `/peers` page, and in the `members` of a `/join`
 * reply and a `/whois #channel` reply; a client pages on with `/peers`'s `next`.
 */
export const PAGE_SIZE = 500;
