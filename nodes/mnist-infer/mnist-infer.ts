// mnist-infer: classifies the handwritten digit in a message with the ONNX
// model, off the main thread, batching whatever arrives together.
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { nodeDeliveryTracker } from "../shared/delivery";
import { fraction, whole } from "../shared/config-values";
import type { BatchItem, InferBatchResult, InferResult } from "../shared/contract";
import { clearStatus, nameUnnamed, showStatus } from "../shared/status";
import { registerAdminApi, type Counters, type DeployedNode } from "./admin-api";
import { InputError, internalFailure } from "./errors";
import { sharpProblem } from "./image/image-decoder";
import { backendSetting, type BackendSetting } from "./inference/backends";
import { ModelError } from "./inference/classifier";
import { InferenceService, type OverflowPolicy } from "./inference/inference-service";
import { locateModel, type LocatedModel } from "./inference/model-file";
import { DEFAULT_MAX_BATCH } from "./inference/service-options";
import { parseRequest, type BatchRequest, type Request, type RequestLimits } from "./request/envelope";
import { RepeatedRequests } from "./request/repeats";
import { rehearse } from "./rehearsal";
import { addressReply } from "./reply-topic";
import { Handover } from "./handover";
import { toBatchResult, toResult } from "./result";
import { statusLine } from "./status-line";

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
  secondLook?: boolean;
  replyTopic: string;
}

const DEFAULTS = {
  maxBatch: DEFAULT_MAX_BATCH,
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
    const replyTopic = (config.replyTopic ?? "").trim();
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
      secondLook: config.secondLook !== false, // on for nodes saved before the setting existed
    });


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
    // What this node cannot deliver when it stops goes to the next node with its id (handover.ts).
    const handover = new Handover(node.id, RED.settings.userDir);
    let inherited = false;
    const takeOver = () => {
      if (inherited) return;
      inherited = true;
      const count = handover.inherit({
        classify: (msg) => node.receive(msg),
        reply: (msg) => (delivery?.track(msg, (copy) => node.send(copy)), node.send(msg)),
        fail: (error, msg) => (delivery?.track(msg, (copy) => node.error(error, copy)), node.error(error, msg)),
      });
      if (count > 0) node.log(RED._("mnist-infer.log.inherited", { count }));
    };

    showStatus(node, "loading", RED._("mnist-infer.status.loading"));
    service.on("state", (state: string, reason?: string) => {
      if (state === "ready") {
        showStatus(node, "ready", status.readyText());
        const backend = service.info?.backend;
        node.log(RED._("mnist-infer.log.loaded", { name: service.info?.name ?? "", file: "shown" in model ? model.shown : "", backend: status.backendLabel(backend) }));
        // A fallback is said where people look: the status (above) and a warning
        // with the reason and the fix, so nobody learns of it only from the speed.
        if (backend?.name === "wasm" && backend.setting === "auto") node.warn(RED._("mnist-infer.log.fallback", { reason: backend.reason ?? "" }));
        const noSharp = sharpProblem();
        if (noSharp) node.warn(RED._("mnist-infer.log.no-sharp", { problem: noSharp }));
        rehearse(service, limits, threshold).catch((err) => node.debug(`rehearsal: ${(err as Error).message}`));
        takeOver();
      } else if (state === "failed") {
        showStatus(node, "failed", RED._("mnist-infer.status.model-failed"));
        node.error(RED._("mnist-infer.errors.model", { message: service.loadError ?? "" }));
        takeOver(); // what a predecessor left is answered too, with this error
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

    const status = statusLine(RED, node, service);

    /** What a request is answered with: its result (and preview), or its batch's reply. */
    async function answerFor(request: Request): Promise<Answer> {
      if ("images" in request) return { payload: await classifyBatch(request) };
      const prediction = await service.classify(request.image, request.threshold ?? threshold);
      const result = toResult(prediction, request, service, threshold);
      status.answered(result);
      return { payload: result, preview: prediction.preview };
    }

    /** Every image of a batch request, each through the queue like a request of its own; failures stay in their slots. */
    async function classifyBatch(request: BatchRequest): Promise<InferBatchResult> {
      const outcomes = await Promise.all(
        request.images.map((item) => (item instanceof InputError ? item : service.classify(item, request.threshold ?? threshold).catch((err: unknown) => (err instanceof InputError ? err : fault(err))))),
      );
      for (const outcome of outcomes) if (outcome instanceof InputError && !["queue-full", "model", "closed", "internal"].includes(outcome.code)) badInput++;
      const reply = toBatchResult(outcomes, request, service, threshold);
      const answered = reply.results.filter((item): item is Exclude<BatchItem, { error: unknown }> => "digit" in item).pop();
      if (answered) status.answered(answered);
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
        addressReply(msg, replyTopic);
        status.request();
        if (!handover.keeps({ kind: "reply", msg })) {
          delivery?.track(msg, (copy) => node.send(copy));
          send(msg);
        }
        done();
      } catch (err) {
        // A fault of our own still gets the sender an error reply.
        const failure = err instanceof InputError ? err : fault(err);
        const id = request?.id ?? failure.requestId;
        if (id !== undefined) msg.id = id;
        if (failure.code === "model") showStatus(node, "failed", RED._("mnist-infer.status.model-failed"));
        else if (failure.code === "queue-full") status.request();
        else if (failure.code !== "closed" && failure.code !== "internal") {
          badInput++;
          // Shown until the next answer, so a bad inject is seen on the node it reached.
          status.badInput(failure.code);
        }
        // Stopping: a request not classified is classified by the next node; an error reply is raised there.
        if (handover.keeps(failure.code === "closed" ? { kind: "request", msg } : { kind: "error", msg, error: { code: failure.code, message: failure.message } })) {
          return void done();
        }
        // Sending an error again is raising it again: Catch nodes build the reply.
        if (delivery) handover.noteError(msg, failure);
        delivery?.track(msg, (copy) => node.error(failure, copy));
        done(failure);
      }
    });

    node.on("close", (removed: boolean, done: () => void) => {
      status.cancel();
      handover.close();
      if (deployed.get(node.id)?.counters === counters) deployed.delete(node.id);
      service
        .close()
        .catch((err) => node.warn(`closing the inference worker: ${(err as Error).message}`))
        // The last input handlers settle on the requests the close refused, then all is handed over.
        .then(() => new Promise((resolve) => setImmediate(resolve)))
        .finally(() => {
          const { left, lost } = handover.leave(removed, delivery?.handOver() ?? []);
          if (left > 0) node.log(RED._("mnist-infer.log.left", { count: left }));
          if (lost > 0) node.warn(RED._("mnist-infer.log.lost", { count: lost }));
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
