// Which image format bytes hold, from their first bytes (each format's
// signature), so that the image source and mnist-infer agree on what an image
// is. Decoding is mnist-infer's work; this only looks.

export type ImageFormat = "png" | "jpeg" | "gif" | "webp" | "tiff" | "bmp" | "svg" | "pdf" | "html" | "unknown";

/** Formats with pixels: what mnist-infer can decode (BMP where the system's image library reads it). */
export const RASTER_FORMATS: readonly ImageFormat[] = ["png", "jpeg", "gif", "webp", "tiff", "bmp"];

/** PNG spec 5.2. */
export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A BMP's file header (14 bytes) and its smallest info header (12) come before any pixel. */
const BMP_MIN_BYTES = 26;

/** Byte by byte: it runs several times for every request, and a Buffer view to compare costs more than the comparison. */
export function isPng(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== PNG_SIGNATURE[i]) return false;
  return true;
}

export function sniffFormat(bytes: Uint8Array): ImageFormat {
  if (isPng(bytes)) return "png";
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 512));
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  const ascii = b.toString("latin1");
  if (ascii.startsWith("GIF87a") || ascii.startsWith("GIF89a")) return "gif";
  if (ascii.startsWith("RIFF") && ascii.slice(8, 12) === "WEBP") return "webp";
  if (ascii.startsWith("II*\0") || ascii.startsWith("MM\0*")) return "tiff";
  if (ascii.startsWith("BM") && b.length >= BMP_MIN_BYTES) return "bmp";
  if (ascii.startsWith("%PDF")) return "pdf";
  // Text formats may start with white space or an XML declaration.
  const lower = ascii.trimStart().toLowerCase();
  if (lower.startsWith("<svg") || (lower.startsWith("<?xml") && lower.includes("<svg"))) return "svg";
  if (lower.startsWith("<")) return "html";
  return "unknown";
}

export function isRasterImage(bytes: Uint8Array): boolean {
  return RASTER_FORMATS.includes(sniffFormat(bytes));
}
