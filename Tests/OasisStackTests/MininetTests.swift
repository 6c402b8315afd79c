// Mininet (Debian's `mininet`) driving Open vSwitch's userspace datapath against
// `oasis openflow controller`: its `pingall`. Mininet's clean-up kills processes and
// deletes files machine-wide, so the whole run is inside `unshare --pid --mount --net
// --fork --mount-proc`, with /tmp and Open vSwitch's state on tmpfs mounts of its own:
// nothing it does reaches this machine's processes, files or network.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct MininetTests {
    /// `mn --topo single,3 --test pingall` with a remote controller: ours (learning).
    @Test func mininetPingallThroughOurController() throws {
        guard getuid() == 0 else { try skip(#function, "Mininet needs root") }
        guard access(oasisPath, X_OK) == 0 else { try skip(#function, "\(oasisPath) is not built") }
        for tool in ["mn", "unshare", "ovsdb-server", "ovs-vswitchd", "ovsdb-tool"]
        where !isInstalled(tool) {
            try skip(
                #function,
                "\(tool) is not installed (scripts/setup.sh installs mininet and openvswitch)")
        }
        // The controller starts before /tmp is replaced by a tmpfs (the binary may live
        // under /tmp, as in a clone there); logs go to the private /var/run/mn. mn has
        // hung now and then under a loaded test run (its shells never answering): a
        // hung mn is killed after 90 s and run once more, its last lines printed.
        let script = """
            set -e
            for d in /var/run/openvswitch /etc/openvswitch /var/log/openvswitch /var/run/mn; do
                mkdir -p $d; mount -t tmpfs tmpfs $d
            done
            ip link set lo up
            "\(oasisPath)" openflow controller --listen 127.0.0.1:6653 --app learning > /var/run/mn/controller.log 2>&1 &
            controller=$!
            mkdir -p /tmp; mount -t tmpfs tmpfs /tmp
            ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema
            ovsdb-server --remote=punix:/var/run/openvswitch/db.sock --pidfile --detach --log-file
            ovs-vsctl --no-wait init
            ovs-vswitchd --pidfile --detach --log-file >/dev/null 2>&1
            sleep 0.5
            set +e
            for attempt in 1 2; do
                timeout -s KILL 90 mn --switch ovs,datapath=user,protocols=OpenFlow10 \\
                    --controller remote,ip=127.0.0.1,port=6653 --topo single,3 --test pingall > /var/run/mn/mn.out 2>&1
                status=$?
                echo "mn exited $status"
                [ $status = 137 ] || break
                echo "mn hung (attempt $attempt); its last lines:"
                tail -n 15 /var/run/mn/mn.out
                mn -c > /dev/null 2>&1
            done
            grep -E "Results|->" /var/run/mn/mn.out
            kill $controller; wait $controller
            cat /var/run/mn/controller.log
            """
        // With the runner's blocked signals Mininet's shells could not be interrupted
        // and mn hung (once, for 10 minutes, its `timeout` unable to stop it).
        let result = try run(
            withSignalsUnblocked([
                "timeout", "-s", "KILL", "280", "unshare", "--pid", "--mount", "--net", "--fork",
                "--mount-proc", "bash", "-c", script,
            ]))
        print("mininet said:\n\(result.output)\(result.errorOutput)")
        #expect(result.output.contains("mn exited 0"), "\(result.output)")
        #expect(result.output.contains("Results: 0% dropped (6/6 received)"), "\(result.output)")
        #expect(result.output.contains("flows installed"), "\(result.output)")
    }
}
