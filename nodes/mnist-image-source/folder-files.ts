// Reading the files of an image source's folder safely: nothing outside the
// folder through a symbolic link (a link to another file of the folder is
// fine), nothing over a size limit read, and no absolute path in what is said.
import { constants, promises as fs } from "fs";
import * as path from "path";

export type RefusedWhy = "outside" | "too-large" | "not-a-file";

/** A file of the folder that is not read, and why, in words without its path. */
export class RefusedFile extends Error {
  constructor(readonly why: RefusedWhy, message: string) {
    super(message);
    this.name = "RefusedFile";
  }
}

/** Whether `file` (a real path) lies inside the folder whose real path is `root`. */
export function isInside(root: string, file: string): boolean {
  const relative = path.relative(root, file);
  return relative !== "" && relative !== ".." && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

export function megabytes(bytes: number): string {
  const mb = bytes / (1024 * 1024);
  return `${mb >= 10 ? Math.round(mb) : Number(mb.toFixed(mb >= 1 ? 1 : 3))} MB`;
}

/**
 * The bytes of `file`, if it is inside the folder with real path `root` once
 * every link is resolved, is a plain file, and holds at most `maxBytes`:
 * otherwise a RefusedFile, and nothing beyond the limit is ever read. Other
 * failures are the file system's errors (their `code` says what; their message
 * holds the path and is not for users).
 */
export async function readInside(root: string, file: string, maxBytes: number): Promise<Buffer> {
  const outside = () => new RefusedFile("outside", "it is a link to a file outside the folder, which is not followed");
  const real = await fs.realpath(file);
  if (!isInside(root, real)) throw outside();
  // O_NOFOLLOW: a link put in its place since realpath is not followed (ELOOP).
  const handle = await fs.open(real, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  try {
    // On Linux, where the file opened really is, in case a folder on the way was swapped for a link.
    const opened = await fs.readlink(`/proc/self/fd/${handle.fd}`).catch(() => real);
    if (!isInside(root, opened)) throw outside();
    const stat = await handle.stat();
    if (!stat.isFile()) throw new RefusedFile("not-a-file", "it is not a file");
    const tooLarge = () => new RefusedFile("too-large", `it is over the ${megabytes(maxBytes)} limit for a file`);
    if (stat.size > maxBytes) throw tooLarge();
    // One byte more than the file had, to see it grow; never more than the limit and one.
    const buffer = Buffer.alloc(Math.min(stat.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) break;
    }
    if (length > maxBytes) throw tooLarge();
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}
