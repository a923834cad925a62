// A stand-in for mnist-infer whose classifying costs nothing, for the benchmark's
// stage 6 only (never shipped): it parses each request and answers it with what
// the model says for that image, looked up by the image's base64 text, in a reply
// of the same shape as mnist-infer's. No base64 decode, no PNG, no preprocessing,
// no inference, no queue, no worker, no delivery tracking: what is left is what
// Node-RED's own mqtt nodes, the broker and the load generator cost per result,
// the least any classifier node pays on this chain.
import fs from "node:fs";
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { roundProbability } from "../../nodes/mnist-infer/inference/prediction";

interface Answer {
  digit: number;
  confidence: number;
  probabilities: number[];
}

const MODEL = { name: "floor", sha256: "", backend: "native" };

function floorNode(RED: NodeAPI): void {
  const answers = new Map<string, Answer>();
  for (const a of JSON.parse(fs.readFileSync(process.env[floorNode.ANSWERS_ENV] ?? "", "utf8")) as Array<{ base64: string; digit: number; confidence: number }>) {
    // Ten probabilities rounded as mnist-infer sends them, so the replies weigh the same.
    const confidence = roundProbability(a.confidence);
    const probabilities = Array.from({ length: 10 }, (_, d) => (d === a.digit ? confidence : roundProbability((1 - a.confidence) / 9)));
    answers.set(a.base64, { digit: a.digit, confidence, probabilities });
  }
  const result = (image: string, label: number | undefined) => {
    const a = answers.get(image);
    if (!a) return { error: { code: "unknown", message: "not one of the benchmark's samples" } };
    return {
      digit: a.digit,
      confidence: a.confidence,
      probabilities: a.probabilities,
      unsure: false,
      threshold: 0.5,
      timings: { preprocessMs: 0, queueMs: 0, inferenceMs: 0, batchSize: 1 },
      inverted: false,
      label,
      correct: label === a.digit,
    };
  };

  function FloorNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    this.on("input", (msg: NodeMessageInFlow & { responseTopic?: string; retain?: boolean; floorReply?: boolean }, send, done) => {
      // A reply coming back from the Complete node (when the flow keeps it): confirmed, nothing to send.
      // (mqtt out has turned its payload into text by then, so the mark tells it from a request.)
      if (msg.floorReply) return void done();
      const request = JSON.parse(String(msg.payload)) as { id?: string; label?: number; labels?: number[]; sentAt?: number; image?: string; images?: string[] };
      msg.payload = Array.isArray(request.images)
        ? { results: request.images.map((image, i) => result(image, request.labels?.[i])), model: MODEL, id: request.id, sentAt: request.sentAt }
        : { ...result(request.image ?? "", request.label), model: MODEL, id: request.id, sentAt: request.sentAt };
      // Addressed as mnist-infer's Reply topic does it.
      msg.topic = msg.responseTopic || "result";
      delete msg.responseTopic;
      msg.retain = false;
      msg.floorReply = true;
      send(msg);
      done();
    });
    this.log("floor stand-in ready");
  }
  RED.nodes.registerType(floorNode.FLOOR_TYPE, FloorNode);
}

namespace floorNode {
  /** Set by the benchmark: a JSON file of `[{ base64, digit, confidence }]`, one per sample. */
  export const ANSWERS_ENV = "MNIST_BENCH_FLOOR_ANSWERS";
  export const FLOOR_TYPE = "mnist-bench-floor";
}

export = floorNode;
