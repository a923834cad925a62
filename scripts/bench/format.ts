// How the report writes its figures, shared by report.ts and shares.ts.

/** A table row: label, value, and the target with whether it was met, where there is one. */
export type Row = [label: string, value: string, target?: string, met?: boolean];

export const rate = (v: number) => `${Math.round(v).toLocaleString("en-US")}/s`;
export const pct = (v: number) => `${(v * 100).toFixed(Math.abs(v) < 0.1 ? 1 : 0)}%`;
export const ms = (v: number) => `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`;
export const micros = (seconds: number) => `${(seconds * 1e6).toFixed(0)} µs`;
export const mb = (v: number) => `${(v / 2 ** 20).toFixed(0)} MB`;
export const mbRange = (w: { low: number; high: number }) => `${(w.low / 2 ** 20).toFixed(0)}–${mb(w.high)}`;
export const signed = (v: number) => `${v >= 0 ? "+" : ""}${pct(v)}`;
/** The first request of 100 against the hundredth, and the median of the 100. */
export const firstAgainstHundredth = (f: { first: number; hundredth: number; median: number }) => `${ms(f.first)} / ${ms(f.hundredth)} (${ms(f.median)})`;

/** Rows as aligned lines; a string is a heading, with a blank line before it. */
export function format(rows: Array<Row | string>): string[] {
  const table = rows.filter((r): r is Row => typeof r !== "string");
  const w0 = Math.max(0, ...table.map((r) => r[0].length));
  const w1 = Math.max(0, ...table.map((r) => r[1].length));
  return rows.map((row) => {
    if (typeof row === "string") return `\n${row}`;
    const [label, value, target, met] = row;
    const mark = target === undefined ? "" : `  ${met ? "✔" : "✘"} target ${target}`;
    return `  ${label.padEnd(w0)}  ${value.padStart(w1)}${mark}`;
  });
}
