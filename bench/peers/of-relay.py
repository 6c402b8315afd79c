#!/usr/bin/env python3
"""A pass-through OpenFlow 1.0 controller for bench/switch.sh: the switch dials it
(`--controller tcp:127.0.0.1:CONTROLLER_PORT`) and keeps that one session for the whole
run; ovs-ofctl connects to LISTEN_PORT as if to a switch's passive listener. The relay
says HELLO to each side itself, answers the switch's echo requests, drops asynchronous
messages (PACKET_IN, FLOW_REMOVED, PORT_STATUS), forwards every request from an
ovs-ofctl session to the switch and each reply back to the session that sent its xid.
It exists because a release build of `oasis openflow switch` crashes when an
ovs-ofctl session on its passive listener closes (bench/RESULTS.md); the flows are
still installed by ovs-ofctl, through one long-lived session.
    of-relay.py CONTROLLER_PORT LISTEN_PORT     (runs until SIGTERM)
It also sends one FLOW_MOD that ovs-ofctl cannot express: an exact match (wildcards 0)
of an untagged frame (dl_vlan 0xffff, dl_vlan_pcp 0; ovs-ofctl reads a PCP as "a tag is
present"), with actions=output:OUT, then a barrier, to a listener (the relay's):
    of-relay.py --exact-flow PORT IN OUT SRC_MAC DST_MAC SRC_IP DST_IP UDP_SRC UDP_DST"""
import os, signal, socket, struct, sys, threading

HELLO, ECHO_REQUEST, ECHO_REPLY = 0, 2, 3
ASYNC = {10, 11, 12}


def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


def messages(buffer):
    """Complete messages taken off the front of buffer (a bytearray)."""
    while len(buffer) >= 8:
        length = struct.unpack_from("!H", buffer, 2)[0]
        if length < 8:
            raise ValueError("bad OpenFlow length")
        if len(buffer) < length:
            return
        message = bytes(buffer[:length])
        del buffer[:length]
        yield message


def hello(xid=1):
    return struct.pack("!BBHI", 1, HELLO, 8, xid)


def main():
    def terminated(*_):
        print("of-relay: terminated", flush=True)
        os._exit(0)
    signal.signal(signal.SIGTERM, terminated)
    controller, clients_listener = listener(int(sys.argv[1])), listener(int(sys.argv[2]))
    print("of-relay: ready", flush=True)
    switch, _ = controller.accept()
    switch.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    to_switch = threading.Lock()
    owner = {}  # xid -> client socket

    def send_switch(m):
        with to_switch:
            switch.sendall(m)

    send_switch(hello())
    print("of-relay: switch connected", flush=True)

    # One thread reads the switch without a pause (so that it never waits on us while
    # we wait on it), answers its echoes and hands replies to their sessions.
    def from_switch():
        buffer = bytearray()
        while True:
            data = switch.recv(65536)
            if not data:
                print("of-relay: the switch closed its session", flush=True)
                os._exit(1)
            buffer += data
            for m in messages(buffer):
                kind, xid = m[1], struct.unpack_from("!I", m, 4)[0]
                if kind == ECHO_REQUEST:
                    send_switch(struct.pack("!BBHI", 1, ECHO_REPLY, len(m), xid) + m[8:])
                elif kind == HELLO or kind in ASYNC:
                    continue
                elif xid in owner:
                    try:
                        owner[xid].sendall(m)
                    except OSError:
                        pass

    def from_client(client):
        buffer = bytearray()
        try:
            client.sendall(hello())
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buffer += data
                for m in messages(buffer):
                    kind, xid = m[1], struct.unpack_from("!I", m, 4)[0]
                    if kind == HELLO:
                        continue
                    if kind == ECHO_REQUEST:
                        client.sendall(struct.pack("!BBHI", 1, ECHO_REPLY, len(m), xid) + m[8:])
                        continue
                    owner[xid] = client
                    send_switch(m)
        except (OSError, ValueError):
            pass
        client.close()

    threading.Thread(target=from_switch, daemon=True).start()
    while True:
        client, _ = clients_listener.accept()
        threading.Thread(target=from_client, args=(client,), daemon=True).start()


def exact_flow(port, in_port, out_port, src_mac, dst_mac, src_ip, dst_ip, sport, dport):
    mac = lambda text: bytes(int(x, 16) for x in text.split(":"))
    match = struct.pack("!IH6s6sHBxHBB2x4s4sHH", 0, int(in_port), mac(src_mac), mac(dst_mac),
                        0xFFFF, 0, 0x0800, 0, 17, socket.inet_aton(src_ip), socket.inet_aton(dst_ip),
                        int(sport), int(dport))
    body = match + struct.pack("!QHHHHIHH", 0, 0, 0, 0, 0x8000, 0xFFFFFFFF, 0xFFFF, 0)
    body += struct.pack("!HHHH", 0, 8, int(out_port), 0)
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    s.sendall(hello() + struct.pack("!BBHI", 1, 14, 8 + len(body), 7) + body + struct.pack("!BBHI", 1, 18, 8, 8))
    buffer = bytearray()
    while True:
        data = s.recv(65536)
        if not data:
            print("of-relay: the session closed before the barrier reply", file=sys.stderr)
            return 1
        buffer += data
        for m in messages(buffer):
            if m[1] == 1:
                print("of-relay: the switch refused the flow: error %s" % m[8:12].hex(), file=sys.stderr)
                return 1
            if m[1] == 19:
                return 0


if __name__ == "__main__":
    if sys.argv[1] == "--exact-flow":
        sys.exit(exact_flow(*sys.argv[2:]))
    sys.exit(main())
