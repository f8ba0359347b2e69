"""Send one STUN Binding request with aioice and print the XOR-MAPPED-ADDRESS.

Usage: python3 aioice_binding.py HOST PORT

Run by tests/stun_interop.rs. Uses aioice's own Transaction (retransmissions
and response matching) over an asyncio datagram endpoint, as aioice's ICE
agent does when it gathers server-reflexive candidates. Prints
"XOR-MAPPED-ADDRESS HOST:PORT" and the local address, or exits non-zero.
"""

import asyncio
import sys

from aioice import stun


class Client(asyncio.DatagramProtocol):
    def __init__(self):
        self.transport = None
        self.transaction = None
        self.transaction_id = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        if self.transaction and message.transaction_id == self.transaction_id:
            self.transaction.response_received(message, addr)

    def send_stun(self, message, addr):
        self.transport.sendto(bytes(message), addr)


async def main(host, port):
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        Client, local_addr=("127.0.0.1", 0)
    )
    try:
        request = stun.Message(
            message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST
        )
        client.transaction_id = request.transaction_id
        client.transaction = stun.Transaction(request, (host, port), client, retransmissions=3)
        response, addr = await asyncio.wait_for(client.transaction.run(), timeout=10)
        mapped_host, mapped_port = response.attributes["XOR-MAPPED-ADDRESS"]
        local_host, local_port = transport.get_extra_info("sockname")[:2]
        print(f"XOR-MAPPED-ADDRESS {mapped_host}:{mapped_port}")
        print(f"LOCAL {local_host}:{local_port}")
        print(f"FROM {addr[0]}:{addr[1]}")
    finally:
        transport.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
