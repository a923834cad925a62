// The edit dialog's side of mnist-infer on Node-RED's admin API: a deployed
// node's counters, and what a model file takes and returns before a deploy.
import type * as express from "express";
import type { NodeAPI } from "node-red";
import { BackendError, backendSetting, type BackendSetting } from "./inference/backends";
import { Classifier, ModelError, type ModelErrorCode } from "./inference/classifier";
import type { InferenceService } from "./inference/inference-service";
import { locateModel, type LocatedModel } from "./inference/model-file";

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

/** The HTTP status of each reason a model cannot be used. */
const REFUSED_WITH: Record<ModelErrorCode, number> = {
  "not-onnx": 400,
  "not-found": 404,
  "not-readable": 403,
  "not-a-file": 400,
  "not-allowed": 403,
  "too-large": 413,
  "invalid-model": 422,
};

/**
 * The answer to GET /mnist-infer/model-info?model=<path>: an empty path is the
 * bundled model, a relative one is relative to the user directory; only
 * `.onnx` files in the places models may be read from are opened (model-file.ts),
 * and answers name the file as it was given, never by its absolute path.
 * Errors carry a code the editor translates.
 */
async function describeModel(RED: NodeAPI, given: unknown, backend: BackendSetting, live?: InferenceService): Promise<{ status: number; body: unknown }> {
  const refuse = (status: number, code: string, message: string) => ({ status, body: { error: { code, message } } });
  if (typeof given !== "string" && given !== undefined) return refuse(400, "bad-request", "model must be one path");
  let located: LocatedModel;
  try {
    located = locateModel(given, { userDir: RED.settings.userDir ?? process.cwd(), extraDirs: (RED.settings as { mnistInferModelDirs?: unknown }).mnistInferModelDirs });
  } catch (err) {
    if (err instanceof ModelError) return refuse(REFUSED_WITH[err.code], err.code, err.message);
    throw err;
  }
  const { file } = located;

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
        bundled: located.bundled,
        file: located.shown,
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
    if (err instanceof ModelError) return refuse(REFUSED_WITH[err.code], err.code, err.message);
    if (err instanceof BackendError) return refuse(422, "backend", err.message);
    throw err;
  } finally {
    await classifier?.release();
  }
}

