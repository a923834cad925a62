// A deploy of "modified nodes" through the admin API, as the editor's Deploy
// button sends it after a setting of mnist-infer was changed: only the
// mnist-infer nodes restart, and Node-RED's own code stays as warm as traffic left it.
import type { NodeRedInstance } from "./processes";

const LOADED = /model \S+ loaded/g;

/** Redeploys every mnist-infer node of `nodeRed` (its name changed) and waits until each has loaded its model again. */
export async function redeployInferNodes(nodeRed: NodeRedInstance, timeoutMs = 60_000): Promise<void> {
  const headers = { "Content-Type": "application/json", "Node-RED-API-Version": "v2" };
  const current = await fetch(`${nodeRed.editor}/flows`, { headers });
  if (!current.ok) throw new Error(`GET /flows: ${current.status} ${await current.text()}`);
  const { flows, rev } = (await current.json()) as { flows: Array<Record<string, unknown>>; rev: string };
  const infer = flows.filter((node) => node.type === "mnist-infer");
  if (infer.length === 0) throw new Error("the flow has no mnist-infer node to redeploy");
  for (const node of infer) node.name = `${String(node.name ?? "")} (redeployed)`.trim();
  const loadedBefore = loadedCount(nodeRed);
  const posted = await fetch(`${nodeRed.editor}/flows`, {
    method: "POST",
    headers: { ...headers, "Node-RED-Deployment-Type": "nodes" },
    body: JSON.stringify({ flows, rev }),
  });
  if (!posted.ok) throw new Error(`POST /flows: ${posted.status} ${await posted.text()}`);
  const deadline = Date.now() + timeoutMs;
  while (loadedCount(nodeRed) < loadedBefore + infer.length) {
    if (Date.now() > deadline) throw new Error(`mnist-infer did not load its model again after the redeploy:\n${nodeRed.output().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function loadedCount(nodeRed: NodeRedInstance): number {
  return nodeRed.output().match(LOADED)?.length ?? 0;
}
