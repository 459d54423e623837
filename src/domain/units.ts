/** Byte units. Names in this codebase carry their unit (`offsetBytes`, `timeoutMs`); these are the factors. */
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/** Largest byte offset we handle as a JS number without losing precision (2^53 - 1, about 8 PiB). */
export const MAX_SAFE_OFFSET_BYTES = Number.MAX_SAFE_INTEGER;

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Parses sizes like "512", "4K", "64KiB", "2G", "1.5GiB" into bytes. Returns null when malformed. */
export function parseBytes(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) return null;
  const factor = { '': 1, K: KiB, M: MiB, G: GiB, T: TiB }[(m[2] ?? '').toUpperCase()] ?? 1;
  const bytes = Number(m[1]) * factor;
  return Number.isSafeInteger(bytes) ? bytes : null;
}
