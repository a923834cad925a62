// What every broker the scripts start looks like: its own file, so broker.ts
// and aedes-broker.ts (which broker.ts imports) can both use it without a circle.
export type BrokerKind = "mosquitto" | "aedes";

export interface Broker {
  /** e.g. `mqtt://127.0.0.1:41234` */
  url: string;
  port: number;
  kind: BrokerKind;
  stop(): Promise<void>;
  /** Stops and starts the broker again on the same port, keeping its sessions. */
  restart?(): Promise<void>;
}
