"""An aiortc peer that speaks switchboard signaling protocol v1 over a WebSocket.

Usage: aiortc_peer.py WS_URL ROOM NAME offer|answer PEER_NAME

Joins ROOM as {"name": NAME}. With `offer` it waits for a member named PEER_NAME and offers
it a data channel "chat"; with `answer` it waits for an offer. Once the channel is open it
sends "hello from NAME"; on the first "hello from ..." it receives it prints
`RESULT {"ok": true, "received": ...}` and keeps the connection up until it is terminated
(or a minute passes), so the other side can finish too.
"""

import asyncio
import json
import sys

import aioice.ice
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

# aioice skips loopback addresses; the tests run in a loopback-only network namespace.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

LINGER_S = 60


def log(*args):
    print(*args, file=sys.stderr, flush=True)


async def main(url, room, name, role, peer_name):
    done = asyncio.get_running_loop().create_future()
    async with websockets.connect(url) as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        log("welcome", welcome["id"])

        async def send(frame):
            await ws.send(json.dumps(frame))

        pc = RTCPeerConnection()
        target = None
        remote_set = False
        early_candidates = []

        def on_channel(channel):
            def say_hello():
                channel.send(f"hello from {name}")

            @channel.on("message")
            def on_message(message):
                log("received", message)
                if isinstance(message, str) and message.startswith("hello from") and not done.done():
                    done.set_result(message)

            if channel.readyState == "open":
                say_hello()
            else:
                channel.on("open", say_hello)

        pc.on("datachannel", on_channel)

        @pc.on("connectionstatechange")
        def on_state():
            log("connection", pc.connectionState)

        async def add_candidate(c):
            text = c["candidate"]
            if text.startswith("a="):
                text = text[2:]
            if not text:
                return
            cand = candidate_from_sdp(text.split(":", 1)[1])
            cand.sdpMid = c.get("sdpMid")
            cand.sdpMLineIndex = c.get("sdpMLineIndex")
            await pc.addIceCandidate(cand)

        async def start_offer(peer_id):
            nonlocal target
            target = peer_id
            on_channel(pc.createDataChannel("chat"))
            await pc.setLocalDescription(await pc.createOffer())
            # aiortc gathers before resolving: every candidate is in the SDP, none trickle.
            await send({"type": "offer", "target": target, "sdp": pc.localDescription.sdp})

        await send({"type": "join", "room": room, "meta": {"name": name}, "ref": 1})

        async def reader():
            nonlocal target, remote_set
            async for raw in ws:
                f = json.loads(raw)
                t = f.get("type")
                if t == "joined" and role == "offer":
                    for p in f["peers"]:
                        if (p.get("meta") or {}).get("name") == peer_name and target is None:
                            await start_offer(p["id"])
                elif t == "peer-joined" and role == "offer":
                    if (f.get("meta") or {}).get("name") == peer_name and target is None:
                        await start_offer(f["id"])
                elif t == "offer" and role == "answer" and target is None:
                    target = f["from"]
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=f["sdp"], type="offer"))
                    remote_set = True
                    for c in early_candidates:
                        await add_candidate(c)
                    await pc.setLocalDescription(await pc.createAnswer())
                    await send({"type": "answer", "target": target, "sdp": pc.localDescription.sdp})
                elif t == "answer" and f.get("from") == target:
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=f["sdp"], type="answer"))
                    remote_set = True
                    for c in early_candidates:
                        await add_candidate(c)
                elif t == "ice-candidate" and f.get("from") == target:
                    if remote_set:
                        await add_candidate(f["candidate"])
                    else:
                        early_candidates.append(f["candidate"])
                elif t == "error":
                    log("server error", f)

        reader_task = asyncio.create_task(reader())
        received = await asyncio.wait_for(done, LINGER_S)
        print("RESULT " + json.dumps({"ok": True, "received": received}), flush=True)
        try:
            await asyncio.wait_for(reader_task, LINGER_S)
        except asyncio.TimeoutError:
            pass
        await pc.close()


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    asyncio.run(main(*sys.argv[1:]))
