// aedes, the embedded MQTT broker: what `npm start`, the tests and the
// benchmark fall back to on machines without Mosquitto (MQTT 3.1.1, in memory,
// no shared subscriptions).
import net from "node:net";
import type { Aedes } from "aedes";
import type { Broker } from "./broker-types";

export interface AedesBroker extends Broker {
  kind: "aedes";
  restart(): Promise<void>;
}

/** Starts the embedded aedes broker (MQTT 3.1.1, in-memory, no `$share`) on 127.0.0.1. */
export async function startAedes(options: { port?: number } = {}): Promise<AedesBroker> {
  // aedes is ESM-only. TypeScript turns import() into require() for CommonJS
  // output, and require() of ESM needs Node >= 20.19 while engines allows 20.9.
  const importModule = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<typeof import("aedes")>;
  const { Aedes: AedesClass } = await importModule("aedes");
  const aedes: Aedes = await AedesClass.createBroker();
  const host = "127.0.0.1";
  let server: net.Server | undefined;
  const sockets = new Set<net.Socket>();

  async function listen(port: number): Promise<number> {
    const next = net.createServer((socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      aedes.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      next.once("error", reject);
      next.listen(port, host, () => {
        next.off("error", reject);
        resolve();
      });
    });
    next.unref(); // like Mosquitto, a broker alone does not keep the process alive
    server = next;
    return (next.address() as net.AddressInfo).port;
  }
  async function close(): Promise<void> {
    const current = server;
    server = undefined;
    if (!current) return;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => current.close(() => resolve()));
  }

  const port = await listen(options.port ?? 0);
  return {
    url: `mqtt://${host}:${port}`,
    port,
    kind: "aedes",
    restart: async () => {
      await close();
      await listen(port); // same aedes instance: in-memory sessions survive, as with Mosquitto's database
    },
    stop: async () => {
      await close();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
