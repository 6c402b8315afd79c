#!/usr/bin/env bash
# Fetches the guest's ingredients (Xen hypervisor and tools, their libraries, a Debian
# 6.1 kernel) as .debs with `apt-get download` and unpacks them with `dpkg-deb -x` into
# a private cache folder. Nothing is installed on the host. Idempotent: a package whose
# .deb is already in the cache is not fetched again, and the unpacked tree is rebuilt
# only when the set of .debs changed.
#
#   OASIS_XEN_CACHE   the cache folder (default /var/cache/oasis-xen); it survives
#                     between CI runs on the same machine
#   OASIS_XEN_KERNEL  a kernel package to use instead of the one linux-image-amd64
#                     depends on (e.g. linux-image-6.1.0-50-amd64)
# Prints the cache folder's path on its last line.
set -euo pipefail

cache=${OASIS_XEN_CACHE:-/var/cache/oasis-xen}
debs=$cache/debs
root=$cache/root
mkdir -p "$debs"
# apt drops privileges to _apt for downloads: let it write there.
if id _apt >/dev/null 2>&1; then chown _apt "$debs"; fi

packages=(
    xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils
    libxenmisc4.17 libxenstore4 libxengnttab1 libxenevtchn1 libxencall1
    libxenforeignmemory1 libxendevicemodel1 libxentoolcore1 libxentoollog1
    libxenhypfs1 libyajl2
    # fio, Linux's blkfront's yardstick in the domU, and the libraries it links that a
    # Debian machine may lack (its rbd, gluster, nbd and pmem engines are built in)
    fio libaio1 libnuma1 libibverbs1 librdmacm1 libnl-3-200 libnl-route-3-200
    libpmem1 libpmemblk1 libndctl6 libdaxctl1 libnbd0 libgfapi0 libgfrpc0 libgfxdr0
    libglusterfs0 libtirpc3 librados2 librbd1 libboost-iostreams1.74.0
    libboost-thread1.74.0 libfmt9 libcryptsetup12 libdevmapper1.02.1 libargon2-1
    libjson-c5 libxml2 libicu72
)

have_deb() { compgen -G "$debs/${1}_*.deb" >/dev/null; }

# The kernel: the one asked for, else the one already cached, else the current one.
kernel=${OASIS_XEN_KERNEL:-}
if [ -z "$kernel" ]; then
    cached=$(find "$debs" -maxdepth 1 -name 'linux-image-6.1.*-amd64_*.deb' -printf '%f\n' | sort -V | tail -n1)
    kernel=${cached%%_*}
fi

missing=()
for p in "${packages[@]}"; do have_deb "$p" || missing+=("$p"); done
if [ -z "$kernel" ] || ! have_deb "$kernel" || [ ${#missing[@]} -gt 0 ]; then
    apt-cache show xen-hypervisor-4.17-amd64 >/dev/null 2>&1 || apt-get update -qq
    if [ -z "$kernel" ]; then
        kernel=$(apt-cache depends linux-image-amd64 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-image-6\.1\.[^ ]*-amd64\)$/\1/p' | head -n1)
        [ -n "$kernel" ] || { echo "fetch: cannot resolve a linux-image-6.1.*-amd64 package" >&2; exit 1; }
    fi
    have_deb "$kernel" || missing+=("$kernel")
    echo "fetch: downloading ${missing[*]}" >&2
    (cd "$debs" && apt-get download -q=2 "${missing[@]}")
fi

# Unpack into one tree, again only when the set of .debs changed.
stamp=$cache/unpacked.list
wanted=$(cd "$debs" && printf '%s\n' ./*.deb | sort)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ] || [ ! -d "$root" ]; then
    echo "fetch: unpacking into $root" >&2
    rm -rf "$root.tmp"
    mkdir -p "$root.tmp"
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root.tmp"; done
    rm -rf "$root"
    mv "$root.tmp" "$root"
    printf '%s\n' "$wanted" >"$stamp"
fi
echo "$kernel" >"$cache/kernel"

# The kernel's ELF image, out of its xz-compressed bzImage: Xen (for dom0) and libxl
# (for a domU) take it as is, and under emulation that saves seconds of unxz per boot.
version=${kernel#linux-image-}
vmlinux=$cache/vmlinux-$version
if [ ! -s "$vmlinux" ]; then
    bz=$root/boot/vmlinuz-$version
    offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n1 | cut -d: -f1)
    [ -n "$offset" ] || { echo "fetch: no xz stream in $bz" >&2; exit 1; }
    tail -c +$((offset + 1)) "$bz" >"$vmlinux.xz"
    xz -dc --single-stream "$vmlinux.xz" >"$vmlinux.tmp"
    rm "$vmlinux.xz"
    mv "$vmlinux.tmp" "$vmlinux"
fi
echo "$cache"
