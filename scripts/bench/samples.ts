// The labelled digits every benchmark stage uses: the 500 held-out PNGs the
// package ships in models/samples, with labels.txt.
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../broker";

export const SAMPLES_DIR = path.join(REPO_ROOT, "models", "samples");
export const MODEL_FILE = path.join(REPO_ROOT, "models", "mnist-cnn.onnx");

export interface Sample {
  file: string;
  label: number;
  png: Buffer;
  /** The PNG as base64, ready to go into a JSON envelope. */
  base64: string;
}

/** What the model answers for a sample when nothing else is going on: the load generator's ground truth. */
export interface Reference {
  digit: number;
  confidence: number;
}

export function loadSamples(): Sample[] {
  const lines = fs.readFileSync(path.join(SAMPLES_DIR, "labels.txt"), "utf8").split("\n").filter((line) => line.trim());
  return lines.map((line) => {
    const [file, label] = line.trim().split(/\s+/);
    const png = fs.readFileSync(path.join(SAMPLES_DIR, file));
    return { file, label: Number(label), png, base64: png.toString("base64") };
  });
}

/** The request envelope of the MQTT contract (README, "The MQTT contract"). */
export function envelope(id: string, sample: Sample, sentAt: number): string {
  return `{"id":"${id}","label":${sample.label},"sentAt":${sentAt},"image":"${sample.base64}"}`;
}

/** A batch request of the MQTT contract: `count` samples from `first` on (wrapping), labelled. */
export function batchEnvelope(id: string, samples: Sample[], first: number, count: number, sentAt: number): string {
  const images: string[] = [];
  const labels: number[] = [];
  for (let k = 0; k < count; k++) {
    const sample = samples[(first + k) % samples.length];
    images.push(`"${sample.base64}"`);
    labels.push(sample.label);
  }
  return `{"id":"${id}","labels":[${labels.join(",")}],"sentAt":${sentAt},"images":[${images.join(",")}]}`;
}
