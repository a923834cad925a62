// What an image source sends for one image: msg.payload is the JSON envelope
// mnist-infer and the original Python services read, or the file's bytes.
import { randomBytes } from "crypto";
import type { NodeMessage } from "node-red";
import type { LabelledImage } from "./labelled-images";

interface ImageEnvelope {
  id: string;
  label?: number;
  /** The image file's bytes, base64. */
  image: string;
  /** Milliseconds since the epoch, for end-to-end latency. */
  sentAt: number;
}

export function imageMessage(image: LabelledImage, bytes: Buffer, id: string, raw: boolean): NodeMessage {
  const sentAt = Date.now();
  const msg: NodeMessage = { id, filename: image.name, sentAt };
  if (image.label !== undefined) msg.label = image.label;
  if (raw) {
    // A copy: the cached bytes must not change if a later node writes into the buffer.
    msg.payload = Buffer.from(bytes);
  } else {
    const label = image.label !== undefined ? { label: image.label } : {};
    const envelope: ImageEnvelope = { id, ...label, image: bytes.toString("base64"), sentAt };
    msg.payload = envelope;
  }
  return msg;
}

/** Ids are "<run>-<n>": the random run part keeps them unique across deploys and resets. */
export function newRunId(): string {
  return randomBytes(4).toString("hex");
}
