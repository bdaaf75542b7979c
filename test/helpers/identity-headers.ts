/**
 * A reference decoder for regate's identity header values
 * (src/upstream/identity-headers.ts, README "Identity headers"): what an
 * upstream does to read them. Split on `,`, percent-decode each item.
 */
export function decodeIdentityHeader(value: string): string[] {
  return value.split(',').map((item) => decodeURIComponent(item));
}
