// The images an image source emits: a folder of image files, labelled by an
// optional list file of "<file> <digit>" lines (the form of the bundled
// samples' labels.txt). Every problem is reported as a sentence saying what
// was wrong and what is expected, naming the folder as it was configured, never
// by an absolute path; the caller decides how to show it. Files are read only
// inside the folder and up to a size (folder-files.ts).
import { promises as fs } from "fs";
import * as path from "path";
import { isRasterImage } from "../shared/image-format";
import { megabytes, readInside, RefusedFile } from "./folder-files";

export const IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "webp", "gif", "tif", "tiff", "bmp"];

const EXPECTED_FILES = `image files ending in ${IMAGE_EXTENSIONS.map((e) => `.${e}`).join(", ")}`;
const EXPECTED_LINE = '"<file> <digit>", for example "0.png 7"';

/** The list file is read only up to this size: 8 MB is some 500,000 lines. */
export const MAX_LIST_BYTES = 8 * 1024 * 1024;

/** Where the images come from. */
export interface ImageFolder {
  /** Absolute path. */
  path: string;
  /** How messages name it: as configured (or the bundled samples' models/samples). */
  name: string;
  /** Image files over this many bytes are skipped. */
  maxFileBytes: number;
}

export interface LabelledImage {
  /** Path relative to the folder, "/"-separated: what msg.filename carries. */
  name: string;
  /** Absolute path. */
  file: string;
  /** The true digit, when the list file gives one. */
  label?: number;
}

export interface Catalogue {
  folder: ImageFolder;
  /** The folder's real path, links resolved: files are read only inside it. */
  root: string;
  images: LabelledImage[];
  /** The list file the labels came from (as configured), when one was read. */
  listFile?: string;
  /** The configured list file does not exist, so the images are unlabelled. */
  listMissing: boolean;
  /** Lines or files left out, one sentence each. */
  problems: string[];
}

export type CatalogueErrorCode = "no-folder" | "not-a-folder" | "no-images";

/** The folder cannot serve any image: nothing to emit. */
export class CatalogueError extends Error {
  constructor(readonly code: CatalogueErrorCode, message: string) {
    super(message);
    this.name = "CatalogueError";
  }
}

/** One image could not be read; the source skips it and goes on. */
export class ImageReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageReadError";
  }
}

export function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(name).slice(1).toLowerCase());
}

/**
 * Reads the folder and its list file. With a list file, the images are the
 * listed ones in the list's order; without one, the folder's image files
 * sorted by name (numerically, so 2.png comes before 10.png), unlabelled.
 */
export async function loadCatalogue(folder: ImageFolder, listName: string): Promise<Catalogue> {
  const { root, entries } = await readFolder(folder);
  const catalogue: Catalogue = { folder, root, images: [], listMissing: false, problems: [] };

  let listText: string | undefined;
  if (listName) {
    try {
      listText = (await readInside(root, path.resolve(folder.path, listName), MAX_LIST_BYTES)).toString("utf8");
      catalogue.listFile = listName;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") catalogue.listMissing = true;
      else catalogue.problems.push(`cannot read the list file ${listName} (${whyNot(err, MAX_LIST_BYTES)}); the images are sent unlabelled`);
    }
  }

  if (listText !== undefined) {
    await parseList(listText, listName, folder.path, entries, catalogue);
    if (catalogue.images.length === 0) {
      throw new CatalogueError("no-images", `the list file ${listName} names no usable image; expected lines of ${EXPECTED_LINE}, naming ${EXPECTED_FILES} in ${folder.name}`);
    }
  } else {
    const names = [...entries].filter((name) => isImageName(name) && !name.startsWith("."));
    names.sort(byName);
    catalogue.images = names.map((name) => ({ name, file: path.join(folder.path, name) }));
    if (catalogue.images.length === 0) throw new CatalogueError("no-images", `no image files in ${folder.name}; expected ${EXPECTED_FILES}`);
  }
  return catalogue;
}

/** Why a file was not read, in words without its path. */
function whyNot(err: unknown, maxBytes: number): string {
  if (err instanceof RefusedFile) return err.why === "too-large" ? `it is over the ${megabytes(maxBytes)} limit` : err.message;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "it no longer exists";
  if (code === "EISDIR") return "it is a folder";
  if (code === "ELOOP") return "it is a link that is not followed";
  return code ?? "unknown error";
}

async function readFolder(folder: ImageFolder): Promise<{ root: string; entries: Set<string> }> {
  const { name } = folder;
  let dirents;
  let root;
  try {
    // The folder as configured may itself be a link; "inside" is measured from where it leads.
    root = await fs.realpath(folder.path);
    dirents = await fs.readdir(root, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CatalogueError("no-folder", `folder not found: ${name}; expected a folder of ${EXPECTED_FILES}`);
    if (code === "ENOTDIR") throw new CatalogueError("not-a-folder", `${name} is a file, not a folder; expected a folder of ${EXPECTED_FILES}`);
    throw new CatalogueError("no-folder", `cannot read the folder ${name} (${code ?? "unknown error"}); expected a readable folder of ${EXPECTED_FILES}`);
  }
  // Symbolic links count as files here; one that leads outside the folder or to no file is reported when it is sent.
  return { root, entries: new Set(dirents.filter((d) => d.isFile() || d.isSymbolicLink()).map((d) => d.name)) };
}

async function parseList(text: string, listName: string, folder: string, entries: Set<string>, catalogue: Catalogue): Promise<void> {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const where = `${listName} line ${i + 1}`;
    const skip = (why: string) => catalogue.problems.push(`${where}: ${why}; line skipped`);

    // The label is the last word, so file names may contain spaces.
    const match = /^(.*\S)\s+(\S+)$/.exec(line);
    if (!match) {
      skip(`"${shorten(line)}" is not of the form ${EXPECTED_LINE}`);
      continue;
    }
    const [, name, label] = match;
    if (!/^[0-9]$/.test(label)) {
      skip(`the label "${shorten(label)}" is not a digit 0–9 (expected ${EXPECTED_LINE})`);
      continue;
    }
    const file = path.resolve(folder, name);
    const relative = path.relative(folder, file);
    if (path.isAbsolute(name) || relative === "" || relative === ".." || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
      skip(`"${shorten(name)}" is outside the folder; list entries must name files inside ${catalogue.folder.name}`);
      continue;
    }
    if (!isImageName(name)) {
      skip(`"${shorten(name)}" is not an image file; expected ${EXPECTED_FILES}`);
      continue;
    }
    if (!(await exists(file, relative, entries))) {
      skip(`"${shorten(name)}" is not in ${catalogue.folder.name}`);
      continue;
    }
    catalogue.images.push({ name: relative.split(path.sep).join("/"), file, label: Number(label) });
  }
}

/** Plain names are checked against the folder listing; only names in sub-folders cost a stat. */
async function exists(file: string, relative: string, entries: Set<string>): Promise<boolean> {
  if (!relative.includes(path.sep)) return entries.has(relative);
  try {
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

const collator = new Intl.Collator("en", { numeric: true });
function byName(a: string, b: string): number {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

function shorten(text: string): string {
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

/**
 * Reads image files, keeping them in memory up to a byte budget: a source that
 * loops over a few hundred small PNGs should not hit the disk for each one.
 */
export class ImageReader {
  private readonly cache = new Map<string, Buffer>();
  private cachedBytes = 0;

  constructor(private readonly budgetBytes: number) {}

  /** The file's bytes, or an ImageReadError saying why they cannot be sent (outside the folder, too large, …). */
  async read(image: LabelledImage, catalogue: Catalogue): Promise<Buffer> {
    const cached = this.cache.get(image.file);
    if (cached) return cached;
    let bytes: Buffer;
    const { maxFileBytes } = catalogue.folder;
    try {
      bytes = await readInside(catalogue.root, image.file, maxFileBytes);
    } catch (err) {
      const expected = err instanceof RefusedFile && err.why === "too-large" ? `an image file of at most ${megabytes(maxFileBytes)}` : "a readable image file inside the folder";
      throw new ImageReadError(`cannot read ${image.name} (${whyNot(err, maxFileBytes)}); skipped. Expected ${expected}`);
    }
    if (bytes.length === 0) throw new ImageReadError(`${image.name} is empty (0 bytes); skipped. Expected an image file`);
    if (!isRasterImage(bytes)) {
      throw new ImageReadError(`${image.name} is not an image: its content is not PNG, JPEG, WebP, GIF, TIFF or BMP; skipped`);
    }
    if (this.cachedBytes + bytes.length <= this.budgetBytes) {
      this.cache.set(image.file, bytes);
      this.cachedBytes += bytes.length;
    }
    return bytes;
  }
}
