// Addresses an answer for Node-RED's mqtt out, so a flow needs no function node
// between mnist-infer and the mqtt out that publishes its replies.
import type { NodeMessage } from "node-red";

/** The message properties mqtt out reads, and the MQTT 5 response topic mqtt in sets. */
interface Addressable extends NodeMessage {
  responseTopic?: unknown;
  retain?: unknown;
  contentType?: unknown;
}

/**
 * Sends the answer where the request asked (its MQTT 5 response topic), else to `topic`.
 * The response topic is removed, so mqtt out does not hand it on to the reply; retain is
 * cleared, so a retained request never makes a retained result. Blank `topic`: the message
 * is left as it is (msg.topic still the request's, for flows that address replies themselves).
 */
export function addressReply(msg: Addressable, topic: string): void {
  if (!topic) return;
  const asked = msg.responseTopic;
  msg.topic = typeof asked === "string" && asked !== "" ? asked : topic;
  delete msg.responseTopic;
  msg.retain = false;
  msg.contentType = "application/json";
}
