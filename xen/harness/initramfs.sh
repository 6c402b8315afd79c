#!/usr/bin/env bash
# Builds an initramfs (uncompressed newc cpio: under TCG the kernel unpacks it faster
# than it would gunzip it) for one of the harness's guests.
#
#   initramfs.sh dom0 OUT.cpio CACHE OASIS [DOMU_CPIO]
#   initramfs.sh dom0-control OUT.cpio CACHE OASIS
#   initramfs.sh domu OUT.cpio CACHE OASIS
#
# CACHE is the folder fetch.sh prints, OASIS the payload binary. dom0 gets the Xen
# tools, the netback and device modules and, given DOMU_CPIO, the domU's kernel, its
# initramfs and its xl config; a domU gets only the device modules its userspace
# netfront needs (never xen-netfront). dom0-control is dom0 plus the kernel's own
# xen-netfront and iproute2's ip (network namespaces): the control mode checks the
# harness's network test against real netback without the Oasis netfront. Each binary's shared libraries come from the
# cache's unpacked packages first, else from this (Debian 12) machine, found by ldd.
# The stack's arguments come from OASIS_XEN_STACK_ARGS.
set -euo pipefail

role=$1 out=$2 cache=$3 oasis=$4 domu_cpio=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$cache/root
kernel_version=$(sed 's/^linux-image-//' "$cache/kernel")
stack_args=${OASIS_XEN_STACK_ARGS:---backend xen --ip 192.0.2.2/24 --offload}

image=$(mktemp -d)
trap 'rm -rf "$image"' EXIT

mkdir -p "$image"/{bin,sbin,usr/bin,usr/sbin,lib/x86_64-linux-gnu,lib64,etc/oasis,etc/xen/scripts}
mkdir -p "$image"/{proc,sys,dev,run,tmp,root,var/log,var/lib}
ln -s ../run "$image/var/run"    # xl's lock files live under /var/run

# busybox and its applets (never over a file already there)
cp /bin/busybox "$image/bin/busybox"
while read -r applet; do
    [ -e "$image/$applet" ] || [ -L "$image/$applet" ] || ln -s /bin/busybox "$image/$applet"
done < <(/bin/busybox --list-full | grep -v '^linuxrc$')

elves=()
# install SOURCE DEST: a file into the image, remembered for the library pass
install_file() {
    mkdir -p "$(dirname "$image/$2")"
    rm -f "$image/$2"
    cp -L "$1" "$image/$2"
    # ldd fails on scripts and static binaries: only dynamic ELF files need libraries
    if ldd "$1" >/dev/null 2>&1; then elves+=("$1"); fi
}

libpath=$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu
copy_libraries() {
    local lib
    # the loader's own path, and every library ldd resolves, into /lib/x86_64-linux-gnu
    cp -L /lib64/ld-linux-x86-64.so.2 "$image/lib64/"
    # libgcc_s is dlopen'ed by pthread_cancel (xl aborts without it)
    cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$image/lib/x86_64-linux-gnu/"
    for elf in "${elves[@]}"; do
        if LD_LIBRARY_PATH=$libpath ldd "$elf" | grep -q 'not found'; then
            echo "initramfs: $elf: libraries not found:" >&2
            LD_LIBRARY_PATH=$libpath ldd "$elf" | grep 'not found' >&2
            exit 1
        fi
        while read -r lib; do
            cp -L "$lib" "$image/lib/x86_64-linux-gnu/$(basename "$lib")"
        done < <(LD_LIBRARY_PATH=$libpath ldd "$elf" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p')
    done
}

modules() {
    local m
    for m in "$@"; do
        install_file "$root/lib/modules/$kernel_version/kernel/$m.ko" "/lib/modules/$kernel_version/$(basename "$m").ko"
    done
}

xenstore_tools() {
    local t
    for t in read write ls list rm exists watch chmod; do
        install_file "$root/usr/bin/xenstore-$t" "/usr/bin/xenstore-$t"
    done
}

install_file "$oasis" /usr/bin/oasis
printf '%s\n' "$stack_args" >"$image/etc/oasis/stack-args"

case $role in
dom0 | dom0-control)
    for b in xenstored xenconsoled xen-init-dom0 xl xenconsole; do
        install_file "$root/usr/lib/xen-4.17/bin/$b" "/usr/lib/xen-4.17/bin/$b"
        ln -s "/usr/lib/xen-4.17/bin/$b" "$image/usr/sbin/$b"
    done
    xenstore_tools
    install_file /usr/bin/ping /usr/bin/ping    # iputils: -i 0.05 and an mdev line
    install_file "$here/../out/udp-echo-client" /usr/bin/udp-echo-client
    install_file "$here/dom0-init.sh" /init
    install_file "$here/net-test.sh" /usr/bin/oasis-net-test
    install_file "$here/vif-oasis" /etc/xen/scripts/vif-oasis
    install_file "$here/../configs/dom0-vif.sh" /usr/bin/oasis-dom0-vif
    # dom0's memory is fixed by dom0_mem: xl must not try to balloon it down
    echo 'autoballoon="off"' >"$image/etc/xen/xl.conf"
    mkdir -p "$image"/var/lib/xen "$image"/var/lib/xenstored "$image"/var/log/xen/console
    modules drivers/xen/xen-privcmd drivers/xen/xenfs/xenfs drivers/xen/xen-evtchn \
        drivers/xen/xen-gntdev drivers/xen/xen-gntalloc drivers/net/xen-netback/xen-netback
    if [ "$role" = dom0-control ]; then
        modules drivers/net/xen-netfront
        install_file /usr/bin/ip /usr/sbin/ip
    fi
    if [ -n "$domu_cpio" ]; then
        install_file "$cache/vmlinux-$kernel_version" /boot/vmlinuz
        install_file "$domu_cpio" /boot/domu.cpio
        install_file "$here/domu.cfg" /etc/xen/oasis-domu.cfg
        install_file "$here/../configs/oasis-domu.cfg" /etc/xen/examples/oasis-domu.cfg
        install_file "$here/../configs/oasis-domu-pvh.cfg" /etc/xen/examples/oasis-domu-pvh.cfg
    fi
    ;;
domu)
    xenstore_tools
    install_file "$here/domu-init.sh" /init
    modules drivers/xen/xen-evtchn drivers/xen/xen-gntdev drivers/xen/xen-gntalloc
    ;;
*)
    echo "initramfs: role must be dom0, dom0-control or domu" >&2
    exit 2
    ;;
esac
copy_libraries
chmod 755 "$image/init"
if [ "$role" != dom0-control ] && find "$image" -name 'xen-netfront*' | grep -q .; then
    echo "initramfs: xen-netfront must not be in the image" >&2
    exit 1
fi
(cd "$image" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$out.tmp"
mv "$out.tmp" "$out"
echo "initramfs: $role image $out ($(du -h "$out" | cut -f1))" >&2
