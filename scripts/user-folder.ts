// The Node-RED user folder `npm start` (and the tests and benchmark that start
// Node-RED as it does) runs in: this repository linked in as an installed
// module, the shipped flow copied in without overwriting a user's edits, and
// whether the flow's dashboard can be served from there.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./broker";

const PACKAGE_NAME = "node-red-contrib-mnist";

/**
 * Makes `userDir` a Node-RED user folder that loads this repository as an
 * installed module: node_modules/node-red-contrib-mnist links to it (Node-RED's
 * registry scans <userDir>/node_modules and follows the link), and package.json
 * lists it, so installing another node from the palette does not prune the link.
 */
export function prepareUserDir(userDir: string, packageRoot: string = REPO_ROOT): void {
  const modules = path.join(userDir, "node_modules");
  fs.mkdirSync(modules, { recursive: true });
  const link = path.join(modules, PACKAGE_NAME);
  const target = path.relative(modules, packageRoot) || ".";
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(link);
  } catch {
    existing = undefined;
  }
  if (existing && !existing.isSymbolicLink()) {
    throw new Error(`${link} is a real folder, not a link to this repository: remove it so the repository's nodes are loaded`);
  }
  if (existing && fs.readlinkSync(link) !== target) {
    fs.unlinkSync(link); // a link to another checkout
    existing = undefined;
  }
  // Relative, so the user folder keeps working if the repository is moved.
  if (!existing) fs.symlinkSync(target, link, "dir");

  const manifest = path.join(userDir, "package.json");
  const pkg: { dependencies?: Record<string, string> } = fs.existsSync(manifest)
    ? JSON.parse(fs.readFileSync(manifest, "utf8"))
    : { name: "node-red-project", description: "Node-RED user folder for the node-red-contrib-mnist demo", version: "0.0.1", private: true };
  const dependency = `file:${path.relative(userDir, packageRoot).split(path.sep).join("/") || "."}`;
  if (pkg.dependencies?.[PACKAGE_NAME] !== dependency) {
    pkg.dependencies = { ...pkg.dependencies, [PACKAGE_NAME]: dependency };
    fs.writeFileSync(manifest, `${JSON.stringify(pkg, null, 2)}\n`);
  }
}

export type FlowCopyOutcome = "copied" | "unchanged" | "updated" | "kept" | "reset";

/**
 * Copies the shipped flow into the user folder, where Node-RED runs and saves
 * it, so deploying from the editor never rewrites the shipped file. A copy the
 * user changed is kept unless `reset`; an unchanged copy of an older shipped
 * version is updated (the hash of what was copied is kept in the user folder).
 */
export function copyFlow(shipped: string, userDir: string, reset: boolean): { copy: string; outcome: FlowCopyOutcome; backup?: string } {
  const text = fs.readFileSync(shipped, "utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${shipped} is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new Error(`${shipped} is not a Node-RED flow (expected a JSON array of nodes)`);

  const copy = path.join(userDir, path.basename(shipped));
  if (path.resolve(shipped) === path.resolve(copy)) return { copy, outcome: "unchanged" };
  const ledger = path.join(userDir, ".shipped-flows.json");
  const copied: Record<string, string> = fs.existsSync(ledger) ? JSON.parse(fs.readFileSync(ledger, "utf8")) : {};
  const write = (outcome: FlowCopyOutcome, backup?: string) => {
    fs.writeFileSync(copy, text);
    fs.writeFileSync(ledger, `${JSON.stringify({ ...copied, [path.basename(copy)]: sha256(text) }, null, 2)}\n`);
    return backup ? { copy, outcome, backup } : { copy, outcome };
  };

  if (!fs.existsSync(copy)) return write("copied");
  const current = fs.readFileSync(copy, "utf8");
  if (current === text) return { copy, outcome: "unchanged" };
  if (reset) {
    const backup = `${copy}.bak`;
    fs.copyFileSync(copy, backup);
    return write("reset", backup);
  }
  return copied[path.basename(copy)] === sha256(current) ? write("updated") : { copy, outcome: "kept" };
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export const DASHBOARD_PACKAGE = "@flowfuse/node-red-dashboard";

/** The path a flow's FlowFuse Dashboard 2 is served at (its ui-base node's), or undefined for a flow without one. */
export function dashboardPath(flowFile: string): string | undefined {
  let nodes: unknown;
  try {
    nodes = JSON.parse(fs.readFileSync(flowFile, "utf8"));
  } catch {
    return undefined; // an unreadable copy is Node-RED's to report
  }
  const base = Array.isArray(nodes) ? (nodes as Array<{ type?: string; path?: string }>).find((node) => node?.type === "ui-base") : undefined;
  if (!base) return undefined;
  const served = (base.path || "/dashboard").trim();
  return served.startsWith("/") ? served : `/${served}`;
}

/**
 * Whether Node-RED will find FlowFuse Dashboard 2: in the user folder (installed
 * from the palette) or in this repository's node_modules (the dev dependency),
 * which Node-RED scans as the folder it is installed in.
 */
export function dashboardInstalled(userDir: string, packageRoot: string = REPO_ROOT): boolean {
  return [userDir, packageRoot].some((dir) => fs.existsSync(path.join(dir, "node_modules", ...DASHBOARD_PACKAGE.split("/"), "package.json")));
}
