// Which model files mnist-infer may open: a node's Model path and the editor's
// model panel name a file, and neither may read just any file on the machine.
// Allowed: files under the Node-RED user directory and the package's models/
// folder, and folders an admin lists in settings.js (mnistInferModelDirs).
// Links are followed before the check, so none leads out of those folders.
import * as fs from "fs";
import * as path from "path";
import { BUNDLED_MODEL, PACKAGE_ROOT } from "../../shared/package-paths";
import { ModelError } from "./classifier";

/** Larger files are refused before they are read: a 28×28 digit classifier is a few megabytes at most. */
const MAX_MODEL_BYTES = 256 * 1024 * 1024;

export interface ModelPlaces {
  /** Node-RED's user directory: relative paths start here. */
  userDir: string;
  /** More folders an admin allowed (settings.js `mnistInferModelDirs`). */
  extraDirs?: unknown;
}

export interface LocatedModel {
  /** The file to open (links resolved). */
  file: string;
  /** How messages name it: the path as given, never the absolute path. */
  shown: string;
  bundled: boolean;
}

/** Finds `given` (empty: the bundled model) among the allowed places, or says why it cannot be used. */
export function locateModel(given: string | undefined, places: ModelPlaces): LocatedModel {
  const asked = (given ?? "").trim();
  if (!asked) return { file: BUNDLED_MODEL, shown: "the bundled mnist-cnn.onnx", bundled: true };
  const shown = path.isAbsolute(asked) ? path.basename(asked) : asked;
  if (path.extname(asked).toLowerCase() !== ".onnx") throw new ModelError(`${shown} is not an .onnx file`, "not-onnx");
  let file: string;
  try {
    file = fs.realpathSync(path.resolve(places.userDir, asked));
  } catch (err) {
    throw fileProblem(err as NodeJS.ErrnoException, shown);
  }
  const roots = allowedRoots(places);
  if (!roots.some((root) => file === root || file.startsWith(root + path.sep))) {
    throw new ModelError(
      `${shown} is outside the folders models may be read from (the Node-RED user directory and the package's models folder); ` +
        "an admin can allow more folders with mnistInferModelDirs in settings.js",
      "not-allowed",
    );
  }
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    throw fileProblem(err as NodeJS.ErrnoException, shown);
  }
  if (!stat.isFile()) throw new ModelError(`model file ${shown} is a folder, not a file`, "not-a-file");
  if (stat.size > MAX_MODEL_BYTES) throw new ModelError(`model file ${shown} is ${stat.size} bytes, over the limit of ${MAX_MODEL_BYTES}`, "too-large");
  return { file, shown, bundled: false };
}

function allowedRoots(places: ModelPlaces): string[] {
  const extra = Array.isArray(places.extraDirs) ? places.extraDirs.filter((d): d is string => typeof d === "string" && d.trim() !== "") : [];
  const roots: string[] = [];
  for (const dir of [places.userDir, path.join(PACKAGE_ROOT, "models"), ...extra]) {
    try {
      roots.push(fs.realpathSync(path.resolve(places.userDir, dir)));
    } catch {
      // a folder that does not exist allows nothing
    }
  }
  return roots;
}

function fileProblem(err: NodeJS.ErrnoException, shown: string): ModelError {
  if (err.code === "ENOENT" || err.code === "ENOTDIR") return new ModelError(`model file not found: ${shown}`, "not-found");
  if (err.code === "EACCES" || err.code === "EPERM") return new ModelError(`model file not readable (permission denied): ${shown}`, "not-readable");
  return new ModelError(`model file not readable (${err.code}): ${shown}`, "not-readable");
}
