# A learning switch for OpenFlow 1.0 on os-ken (PyPI `os-ken`, which ships no sample
# apps): the shape of Ryu's simple_switch, written here for bench/openflow.sh. Like it,
# it answers a packet to a known MAC with a FLOW_MOD *and* a PACKET_OUT (so a cbench-like
# load generator counts two responses per PACKET_IN).
#
#   python3 osken_simple_switch.py PORT

import logging
import sys

from os_ken.lib import hub

hub.patch(thread=False)  # as osken-manager does first: eventlet's green sockets

from os_ken import cfg  # noqa: E402
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.mac import haddr_to_bin
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_0


class SimpleSwitch(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_0.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mac_to_port = {}

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        datapath = msg.datapath
        ofproto = datapath.ofproto
        parser = datapath.ofproto_parser
        eth = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        if eth is None:
            return
        table = self.mac_to_port.setdefault(datapath.id, {})
        table[eth.src] = msg.in_port
        out_port = table.get(eth.dst, ofproto.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofproto.OFPP_FLOOD:
            match = parser.OFPMatch(
                in_port=msg.in_port, dl_dst=haddr_to_bin(eth.dst), dl_src=haddr_to_bin(eth.src))
            datapath.send_msg(parser.OFPFlowMod(
                datapath=datapath, match=match, cookie=0, command=ofproto.OFPFC_ADD,
                idle_timeout=0, hard_timeout=0, priority=ofproto.OFP_DEFAULT_PRIORITY,
                flags=ofproto.OFPFF_SEND_FLOW_REM, actions=actions))
        data = msg.data if msg.buffer_id == ofproto.OFP_NO_BUFFER else None
        datapath.send_msg(parser.OFPPacketOut(
            datapath=datapath, buffer_id=msg.buffer_id, in_port=msg.in_port,
            actions=actions, data=data))


def main():
    logging.basicConfig(level=logging.WARNING)
    port = sys.argv[1] if len(sys.argv) > 1 else "6633"
    cfg.CONF(args=["--ofp-tcp-listen-port", port, "--ofp-listen-host", "127.0.0.1"], project="os_ken")
    manager = app_manager.AppManager.get_instance()
    manager.load_apps(["os_ken.controller.ofp_handler"])
    # Registered before instantiate_apps, which wires every app's event handlers.
    manager.applications_cls["simple_switch"] = SimpleSwitch
    contexts = manager.create_contexts()
    services = manager.instantiate_apps(**contexts)
    hub.joinall(services)


if __name__ == "__main__":
    main()
