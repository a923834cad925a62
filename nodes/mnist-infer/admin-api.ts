// The edit dialog's side of mnist-infer on Node-RED's admin API: a deployed
// node's counters, and what a model file takes and returns before a deploy.
import { promises as fs } from "fs";
import * as path from "path";
import type * as express from "express";
import type { NodeAPI } from "node-red";
import { BUNDLED_MODEL } from "../shared/package-paths";
import { BackendError, backendSetting, type BackendSetting } from "./inference/backends";
import { Classifier, ModelError } from "./inference/classifier";
import type { InferenceService } from "./inference/inference-service";

/** A deployed node's counters since it started. */
export type Counters = () => Record<string, unknown>;
export interface DeployedNode {
  counters: Counters;
  service: InferenceService;
}

export function registerAdminApi(RED: NodeAPI, deployedNode: (id: string) => DeployedNode | undefined): void {
  // The edit dialog's counters for a deployed node: requests classified, refused,
  // dropped, repeats ignored, replies sent again.
  RED.httpAdmin.get("/mnist-infer/:id/stats", RED.auth.needsPermission("mnist-infer.read"), (req: express.Request, res: express.Response) => {
    // A node not deployed yet is a normal case for the dialog, not an error.
    const live = deployedNode(String(req.params.id));
    res.json(live ? { deployed: true, ...live.counters() } : { deployed: false });
  });

  // The edit dialog's "Model info" button: what a model file takes and returns,
  // checked by the same validation the node runs, before anything is deployed.
  RED.httpAdmin.get("/mnist-infer/model-info", RED.auth.needsPermission("mnist-infer.read"), (req: express.Request, res: express.Response) => {
    const live = deployedNode(String(req.query.node ?? ""));
    void describeModel(RED, req.query.model, backendSetting(req.query.backend), live?.service).then(
      (answer) => res.status(answer.status).json(answer.body),
      (err: Error) => res.status(500).json({ error: { code: "failed", message: err.message } }),
    );
  });
}

/** Model-card fields the dialog shows; the rest of the card (held-out indices, …) stays on disk. */
const CARD_FIGURES = ["version", "heldOutAccuracy", "heldOutCorrect", "heldOutCount", "unsureBelow", "heldOutFlagged", "trainCount", "epochs", "parameters", "opset", "framework"];

/**
 * The answer to GET /mnist-infer/model-info?model=<path>: an empty path is the
 * bundled model, a relative one is relative to the user directory, and only
 * `.onnx` files are opened. Errors carry a code the editor translates.
 */
async function describeModel(RED: NodeAPI, given: unknown, backend: BackendSetting, live?: InferenceService): Promise<{ status: number; body: unknown }> {
  const refuse = (status: number, code: string, message: string) => ({ status, body: { error: { code, message } } });
  const model = typeof given === "string" ? given.trim() : "";
  if (typeof given !== "string" && given !== undefined) return refuse(400, "bad-request", "model must be one path");
  if (model && path.extname(model).toLowerCase() !== ".onnx") return refuse(400, "not-onnx", `${model} is not an .onnx file`);
  const file = model ? path.resolve(RED.settings.userDir ?? process.cwd(), model) : BUNDLED_MODEL;
  const stat = await fs.stat(file).catch((err: NodeJS.ErrnoException) => err);
  if (stat instanceof Error) {
    return stat.code === "ENOENT" ? refuse(404, "not-found", `${file} does not exist`) : refuse(403, "not-readable", `${file} cannot be read (${stat.code})`);
  }
  if (!stat.isFile()) return refuse(400, "not-a-file", `${file} is not a file`);

  let classifier: Classifier | undefined;
  try {
    // One thread: this only reads the model, on Node-RED's own thread.
    classifier = await Classifier.create(file, backend, 1);
    const { info } = classifier;
    const card: Record<string, unknown> = {};
    for (const key of CARD_FIGURES) {
      const value = info.card?.[key];
      if (typeof value === "number" || typeof value === "string") card[key] = value;
    }
    return {
      status: 200,
      body: {
        bundled: !model,
        file,
        name: info.name,
        sha256: info.sha256,
        bytes: info.bytes,
        input: info.input,
        output: info.output,
        card: Object.keys(card).length ? card : null,
        // What the deployed node runs on when it uses this model; before a deploy, what it would run on here.
        backend: live?.info && live.info.file === file ? { ...live.info.backend, deployed: true } : { ...info.backend, deployed: false },
      },
    };
  } catch (err) {
    if (err instanceof ModelError) return refuse(422, "invalid-model", err.message);
    if (err instanceof BackendError) return refuse(422, "backend", err.message);
    throw err;
  } finally {
    await classifier?.release();
  }
}

