// Reading numbers from a node's configuration: the editor stores what was typed
// (a string, or a number in older flows), and a blank or invalid field means the default.

/** A whole number from `min` to `max`, or `fallback` when blank or out of range. */
export function whole(value: string | number | undefined | null, min: number, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined || value === null || value === "") return fallback;
  const n = Number(value);
  return Number.isFinite(n) && n >= min && n <= max ? Math.floor(n) : fallback;
}
