// Reading numbers from a node's configuration: the editor stores what was typed
// (a string, or a number in older flows), and a blank or invalid field means the default.

/** A whole number from `min` to `max`, or `fallback` when blank or out of range. */
export function whole(value: string | number | undefined | null, min: number, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined || value === null || value === "") return fallback;
  const n = Number(value);
  return Number.isFinite(n) && n >= min && n <= max ? Math.floor(n) : fallback;
}

/** A number from 0 to 1, or undefined when blank or out of range. */
export function fraction(value: string | number | undefined | null): number | undefined {
  if (value === undefined || value === null || String(value).trim() === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 && n <= 1 ? n : undefined;
}
