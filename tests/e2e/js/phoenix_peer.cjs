// The official Phoenix JavaScript client (npm `phoenix`, transport from `ws`) as the reference server's peer.
//
// It connects to URL (the load balancer), joins TOPIC and heartbeats every HEARTBEAT_MS. Everything it sees is
// printed as one JSON line on stdout, for the e2e test to read:
//   {"event":"open"}                       the WebSocket opened
//   {"event":"joined","server":"A"}        a join (or rejoin) was answered ok; `server` is the join reply's
//   {"event":"heartbeat_reply"}            a heartbeat on topic "phoenix" was answered
//   {"event":"close","code":1012,...}      the socket closed (phoenix.js reconnects by itself)
//   {"event":"error","message":"..."}      a transport error
// It exits by itself after MAX_S seconds so a forgotten peer never outlives its test.
//
// usage: node phoenix_peer.cjs URL TOKEN HEARTBEAT_MS [TOPIC] [MAX_S]
"use strict";

const { Socket } = require("phoenix");
const WebSocket = require("ws");

const [url, token, heartbeatMs, topic = "room:lobby", maxS = "120"] = process.argv.slice(2);
if (!url || !token || !heartbeatMs) {
  process.stderr.write("usage: node phoenix_peer.cjs URL TOKEN HEARTBEAT_MS [TOPIC] [MAX_S]\n");
  process.exit(2);
}

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, at: Date.now() / 1000, ...fields }) + "\n");
}

const socket = new Socket(`${url.replace(/\/$/, "")}/socket`, {
  transport: WebSocket,
  params: { token },
  heartbeatIntervalMs: Number(heartbeatMs),
});

socket.onOpen(() => emit("open"));
socket.onClose((e) => emit("close", { code: e.code, reason: String(e.reason || ""), clean: Boolean(e.wasClean) }));
socket.onError((e) => emit("error", { message: String((e && e.message) || e) }));
socket.onMessage((msg) => {
  if (msg.topic === "phoenix" && msg.event === "phx_reply" && msg.payload.status === "ok") emit("heartbeat_reply");
});

const channel = socket.channel(topic, {});
// The join push keeps its hooks across rejoins, so every successful rejoin prints `joined` again.
channel
  .join()
  .receive("ok", (resp) => emit("joined", { server: resp && resp.server }))
  .receive("error", (resp) => emit("join_error", { response: resp }));

socket.connect();

const stop = () => {
  socket.disconnect(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setTimeout(stop, Number(maxS) * 1000).unref();
