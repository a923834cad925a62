// mnist-infer: classifies the handwritten digit in a message with the ONNX
// model, off the main thread, batching whatever arrives together.
import * as path from "path";
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { nodeDeliveryTracker } from "../shared/delivery";
import { fraction, whole } from "../shared/config-values";
import type { BatchItem, InferBatchResult, InferResult } from "../shared/contract";
import { clearStatus, nameUnnamed, percent, showStatus, throttledStatus } from "../shared/status";
import { registerAdminApi, type Counters, type DeployedNode } from "./admin-api";
import { InputError, internalFailure } from "./errors";
import { sharpProblem } from "./image/image-decoder";
import { backendSetting, type BackendInfo, type BackendSetting } from "./inference/backends";
import { ModelError } from "./inference/classifier";
import { InferenceService, type OverflowPolicy } from "./inference/inference-service";
import { locateModel, type LocatedModel } from "./inference/model-file";
import { parseRequest, type BatchRequest, type Request, type RequestLimits } from "./request/envelope";
import { RepeatedRequests } from "./request/repeats";
import { toBatchResult, toResult } from "./result";

interface MnistInferDef extends NodeDef {
  model: string;
  property: string;
  output: string;
  maxBatch: string | number;
  maxBatchImages: string | number;
  queueSize: string | number;
  queueMemory: string | number;
  overflow: OverflowPolicy;
  maxBytes: string | number;
  maxPixels: string | number;
  preview: boolean;
  repeatWindow: string | number;
  confirmDelivery: boolean;
  backend: BackendSetting;
  threshold: string | number;
}

const DEFAULTS = {
  maxBatch: 32,
  maxBatchImages: 256,
  queueSize: 1000,
  queueMemory: 64,
  maxBytes: 5 * 1024 * 1024,
  maxPixels: 24_000_000,
  repeatWindow: 60,
};

/** A request's answer: its result (with the image the model saw, when asked for), or its batch's reply. */
interface Answer {
  payload: InferResult | InferBatchResult;
  preview?: Buffer;
}

/** Deployed nodes by id, for the edit dialog's counters and model panel (admin-api.ts). */
const deployed = new Map<string, DeployedNode>();

export = function (RED: NodeAPI) {
  function MnistInferNode(this: Node, config: MnistInferDef) {
    RED.nodes.createNode(this, config);
    nameUnnamed(this, RED._("mnist-infer.paletteLabel"));
    const node = this;
    const property = config.property || "payload";
    const output = config.output || "payload";
    const limits: RequestLimits = {
      maxBytes: whole(config.maxBytes, 1, DEFAULTS.maxBytes),
      maxPixels: whole(config.maxPixels, 1, DEFAULTS.maxPixels),
      maxBatchImages: whole(config.maxBatchImages, 1, DEFAULTS.maxBatchImages),
    };
    const model = modelPlace(RED, config.model);
    const modelFile = "file" in model ? model.file : "";
    const service = new InferenceService({
      modelFile,
      refusal: "problem" in model ? model.problem : undefined,
      backend: backendSetting(config.backend),
      maxBatch: whole(config.maxBatch, 1, DEFAULTS.maxBatch),
      queueLimit: whole(config.queueSize, 1, DEFAULTS.queueSize),
      queueBytes: whole(config.queueMemory, 1, DEFAULTS.queueMemory) * 1024 * 1024,
      overflow: config.overflow === "drop-oldest" ? "drop-oldest" : "reject-newest",
      maxPixels: limits.maxPixels,
      preview: Boolean(config.preview),
    });

    /** What the status shows: the latest answer, or the latest bad input until the next answer. */
    let latest: { answer: Pick<InferResult, "digit" | "confidence" | "unsure"> } | { badInput: string } | undefined;

    // A request the broker delivers again (QoS 1) is answered once. Only MQTT
    // messages can be redeliveries; a request injected twice is answered twice.
    const repeatWindow = whole(config.repeatWindow, 0, DEFAULTS.repeatWindow);
    /** "Unsure below" set on the node; blank means the model card's own. */
    const threshold = fraction(config.threshold);
    const repeats = new RepeatedRequests<Answer>(repeatWindow * 1000);
    let repeatsAnswered = 0;
    /** Requests refused for what they were (not for a full queue, a missing model or a stop). */
    let badInput = 0;
    /** Requests mnist-infer failed on through a fault of its own. */
    let faults = 0;

    // Replies (and error replies) kept until the mqtt out that sends them confirms
    // them through a Complete node wired back here; see shared/delivery.ts.
    const delivery = config.confirmDelivery ? nodeDeliveryTracker(RED, node, "mnist-infer") : undefined;

    showStatus(node, "loading", RED._("mnist-infer.status.loading"));
    service.on("state", (state: string, reason?: string) => {
      if (state === "ready") {
        showStatus(node, "ready", readyText());
        const backend = service.info?.backend;
        node.log(RED._("mnist-infer.log.loaded", { name: service.info?.name ?? "", file: "shown" in model ? model.shown : "", backend: backendLabel(backend) }));
        // A fallback is said where people look: the status (above) and a warning
        // with the reason and the fix, so nobody learns of it only from the speed.
        if (backend?.name === "wasm" && backend.setting === "auto") node.warn(RED._("mnist-infer.log.fallback", { reason: backend.reason ?? "" }));
        const noSharp = sharpProblem();
        if (noSharp) node.warn(RED._("mnist-infer.log.no-sharp", { problem: noSharp }));
      } else if (state === "failed") {
        showStatus(node, "failed", RED._("mnist-infer.status.model-failed"));
        node.error(RED._("mnist-infer.errors.model", { message: service.loadError ?? "" }));
      } else if (state === "loading" && reason) {
        showStatus(node, "loading", RED._("mnist-infer.status.restarting"));
        node.warn(reason);
      }
    });

    const startedAt = new Date().toISOString();
    const counters: Counters = () => ({
      since: startedAt,
      ...service.stats,
      backlog: service.backlog,
      backlogBytes: service.backlogBytes,
      badInput,
      faults,
      repeatsAnswered,
      delivery: delivery?.stats ?? null,
    });
    deployed.set(node.id, { counters, service });

    /** "ready · native", or "ready · WebAssembly" and whether native was wanted but missing. */
    const readyText = () => {
      const backend = service.info?.backend;
      if (backend?.name === "wasm" && backend.setting === "auto") return RED._("mnist-infer.status.ready-fallback");
      return RED._("mnist-infer.status.ready-on", { backend: backendLabel(backend) });
    };
    const backendLabel = (backend?: BackendInfo) => RED._(`mnist-infer.backend.${backend?.name ?? "native"}`);

    let refusedShown = 0;
    /** Shows the latest prediction, or the backlog while one builds up, and what overflow refused. */
    const predictionStatus = throttledStatus(() => {
      if (service.state !== "ready") return;
      const backlog = service.backlog;
      const refused = service.stats.rejected + service.stats.dropped;
      const queued = backlog > 0 ? RED._("mnist-infer.status.queued", { count: backlog }) : "";
      if (refused > refusedShown) {
        // Overloaded: what the queue holds and how many requests it has refused so far.
        refusedShown = refused;
        showStatus(node, "working", `${queued || readyText()} · ${RED._("mnist-infer.status.refused", { count: refused })}`);
        predictionStatus.request(); // back to the prediction once refusals stop
        return;
      }
      if (!latest) return;
      if ("badInput" in latest) return void showStatus(node, "failed", RED._("mnist-infer.status.bad-input", { code: latest.badInput }));
      const { digit, confidence, unsure } = latest.answer;
      const said = RED._(unsure ? "mnist-infer.status.unsure" : "mnist-infer.status.result", { digit, confidence: percent(confidence) });
      showStatus(node, backlog > 0 ? "working" : "ready", `${said}${queued ? ` · ${queued}` : ""}`);
    });

    /** What a request is answered with: its result (and preview), or its batch's reply. */
    async function answerFor(request: Request): Promise<Answer> {
      if ("images" in request) return { payload: await classifyBatch(request) };
      const prediction = await service.classify(request.image);
      const result = toResult(prediction, request, service, threshold);
      latest = { answer: { digit: result.digit, confidence: result.confidence, unsure: result.unsure } };
      return { payload: result, preview: prediction.preview };
    }

    /** Every image of a batch request, each through the queue like a request of its own; failures stay in their slots. */
    async function classifyBatch(request: BatchRequest): Promise<InferBatchResult> {
      const outcomes = await Promise.all(
        request.images.map((item) => (item instanceof InputError ? item : service.classify(item).catch((err: unknown) => (err instanceof InputError ? err : fault(err))))),
      );
      for (const outcome of outcomes) if (outcome instanceof InputError && !["queue-full", "model", "closed", "internal"].includes(outcome.code)) badInput++;
      const reply = toBatchResult(outcomes, request, service, threshold);
      const answered = reply.results.filter((item): item is Exclude<BatchItem, { error: unknown }> => "digit" in item).pop();
      if (answered) latest = { answer: { digit: answered.digit, confidence: answered.confidence, unsure: answered.unsure } };
      return reply;
    }

    /** A fault of mnist-infer's own, not of the request: logged with its stack and counted apart. */
    function fault(err: unknown): InputError {
      faults++;
      node.error(`${RED._("mnist-infer.log.fault")}: ${(err as Error)?.stack ?? String(err)}`);
      return internalFailure(err);
    }

    node.on("input", async (msg: NodeMessageInFlow, send, done) => {
      if (delivery?.confirm(msg)) {
        done();
        return;
      }
      let request: Request | undefined;
      try {
        const value = RED.util.getMessageProperty(msg, property);
        request = parseRequest(value, { id: msg.id, label: msg.label, sentAt: msg.sentAt, threshold: msg.threshold }, limits);
        if (request.id !== undefined) msg.id = request.id;
        if (!("images" in request) && request.label !== undefined) msg.label = request.label;
        let answer: Answer;
        if (repeats.enabled && request.id !== undefined && isRedeliverable(msg, value)) {
          // Sent again (a QoS 1 redelivery, a retry): the first's answer, given or on its way.
          const earlier = repeats.earlier(request.id, value);
          const given = earlier.answer && (await earlier.answer.catch(() => undefined));
          if (given) {
            repeatsAnswered++;
            node.log(RED._("mnist-infer.log.repeat", { id: String(request.id), count: repeatsAnswered }));
            answer = given;
          } else {
            const work = answerFor(request);
            repeats.remember(earlier.key, work);
            answer = await work;
          }
        } else {
          answer = await answerFor(request);
        }
        RED.util.setMessageProperty(msg, output, answer.payload, true);
        if (answer.preview) msg.preview = answer.preview;
        predictionStatus.request();
        delivery?.track(msg, (copy) => node.send(copy));
        send(msg);
        done();
      } catch (err) {
        // A fault of our own still gets the sender an error reply.
        const failure = err instanceof InputError ? err : fault(err);
        const id = request?.id ?? failure.requestId;
        if (id !== undefined) msg.id = id;
        if (failure.code === "model") showStatus(node, "failed", RED._("mnist-infer.status.model-failed"));
        else if (failure.code === "queue-full") predictionStatus.request();
        else if (failure.code !== "closed" && failure.code !== "internal") {
          badInput++;
          // Shown until the next answer, so a bad inject is seen on the node it reached.
          latest = { badInput: failure.code };
          predictionStatus.request();
        }
        // Sending an error again is raising it again: Catch nodes build the reply.
        delivery?.track(msg, (copy) => node.error(failure, copy));
        done(failure);
      }
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      predictionStatus.cancel();
      delivery?.close();
      if (deployed.get(node.id)?.counters === counters) deployed.delete(node.id);
      service
        .close()
        .catch((err) => node.warn(`closing the inference worker: ${(err as Error).message}`))
        .finally(() => {
          clearStatus(node);
          done();
        });
    });
  }

  // settings.js may list more folders models can be read from (model-file.ts); the editor never sees it.
  RED.nodes.registerType("mnist-infer", MnistInferNode, { settings: { mnistInferModelDirs: { value: [], exportable: false } } });

  registerAdminApi(RED, (id) => deployed.get(id));
};

/** The node's model file among the places models may be read from, or why it may not be used. */
function modelPlace(RED: NodeAPI, given: string | undefined): LocatedModel | { problem: string } {
  try {
    return locateModel(given, { userDir: RED.settings.userDir ?? process.cwd(), extraDirs: (RED.settings as { mnistInferModelDirs?: unknown }).mnistInferModelDirs });
  } catch (err) {
    if (err instanceof ModelError) return { problem: err.message };
    throw err;
  }
}

/** Only a request that came over MQTT with QoS 1 or 2 can be delivered twice; its bytes identify it. */
function isRedeliverable(msg: NodeMessageInFlow, value: unknown): value is Buffer | string {
  const qos = (msg as { qos?: unknown }).qos;
  return typeof qos === "number" && qos > 0 && (Buffer.isBuffer(value) || typeof value === "string");
}
