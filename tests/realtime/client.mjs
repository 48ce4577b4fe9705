// A real socket.io-client driven by the Rust tests (tests/realtime.rs).
//
//   node client.mjs <server url> [--cookie NAME=VALUE] [--token T] [--after N] [--origin O]
//
// Prints one JSON object per line on stdout: {"event":"connect"}, {"event":"connect_error",
// "message":…}, {"event":"disconnect","reason":…} and every server event as
// {"event":<name>,"data":<payload>}. Reads commands, one JSON object per line, on stdin:
//   {"cmd":"subscribe","customer_id":…}   → {"event":"ack","cmd":"subscribe","reply":…}
//   {"cmd":"unsubscribe","customer_id":…} → {"event":"ack",…}
//   {"cmd":"close"}                       → disconnects and exits
import { io } from "socket.io-client";
import readline from "node:readline";

const args = process.argv.slice(2);
const url = args.shift();
const options = { transports: ["websocket"], reconnection: false, auth: {}, extraHeaders: {} };
while (args.length) {
  const flag = args.shift();
  const value = args.shift();
  if (flag === "--cookie") options.extraHeaders.Cookie = value;
  else if (flag === "--token") options.auth.token = value;
  else if (flag === "--after") options.auth.after = Number(value);
  else if (flag === "--origin") options.extraHeaders.Origin = value;
  else throw new Error(`unknown flag ${flag}`);
}

const print = (object) => process.stdout.write(JSON.stringify(object) + "\n");
const socket = io(url, options);
socket.on("connect", () => print({ event: "connect" }));
socket.on("connect_error", (e) => {
  print({ event: "connect_error", message: e.message });
  process.exit(0);
});
socket.on("disconnect", (reason) => {
  print({ event: "disconnect", reason });
  process.exit(0);
});
socket.onAny((event, data) => print({ event, data }));

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "close") {
    socket.disconnect();
    process.exit(0);
  }
  socket.timeout(5000).emit(command.cmd, { customer_id: command.customer_id }, (err, reply) => {
    print({ event: "ack", cmd: command.cmd, reply: err ? { error: String(err) } : reply });
  });
});
lines.on("close", () => {
  socket.disconnect();
  process.exit(0);
});
