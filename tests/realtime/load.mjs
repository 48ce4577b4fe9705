// The load generator of the realtime benchmark (benches/realtime.rs): N real
// socket.io-client connections in this process.
//
//   node load.mjs <url> <clients> <event> [--token T] [--origin O]
//
// Prints {"ready": N} once every client is connected (for our server: once each got
// `ready`), then, for every `<event>` received by all clients (or after 15 s), one line
// {"seq": <position or seq>, "received": N, "times": [...]} with each client's receipt time
// in milliseconds since the epoch (sub-millisecond). Stops on stdin's end.
import { io } from "socket.io-client";
import { performance } from "node:perf_hooks";

const [url, countText, event, ...rest] = process.argv.slice(2);
const count = Number(countText);
const auth = {};
const extraHeaders = {};
for (let i = 0; i < rest.length; i += 2) {
  if (rest[i] === "--token") auth.token = rest[i + 1];
  if (rest[i] === "--origin") extraHeaders.Origin = rest[i + 1];
}
const now = () => performance.timeOrigin + performance.now();
const pending = new Map();
let ready = 0;

function record(seq) {
  let entry = pending.get(seq);
  if (!entry) {
    entry = { times: [], timer: setTimeout(() => flush(seq), 15000) };
    pending.set(seq, entry);
  }
  entry.times.push(now());
  if (entry.times.length === count) flush(seq);
}

function flush(seq) {
  const entry = pending.get(seq);
  if (!entry) return;
  clearTimeout(entry.timer);
  pending.delete(seq);
  process.stdout.write(JSON.stringify({ seq, received: entry.times.length, times: entry.times }) + "\n");
}

const sockets = [];
for (let i = 0; i < count; i++) {
  const socket = io(url, { transports: ["websocket"], auth, extraHeaders, reconnection: false, forceNew: true });
  const markReady = () => {
    ready += 1;
    if (ready === count) process.stdout.write(JSON.stringify({ ready }) + "\n");
  };
  if (auth.token) socket.on("ready", markReady);
  else socket.on("connect", markReady);
  socket.on("connect_error", (e) => process.stderr.write(`client ${i}: ${e.message}\n`));
  socket.on(event, (envelope) => record(envelope.position ?? envelope.seq));
  sockets.push(socket);
}

process.stdin.resume();
process.stdin.on("end", () => {
  for (const s of sockets) s.disconnect();
  process.exit(0);
});
