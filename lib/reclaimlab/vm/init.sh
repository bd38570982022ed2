#!/bin/busybox sh
# /init of the kit's guest (reclaimlab/vm/build.py packs it into the initramfs).
# Mounts the kernel's file systems, loads the virtio modules in dependency order, mounts the
# small ext4 disk (so the page cache has a real file system), then hands over to the agent.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# cgroup2 at /sys/fs/cgroup, as WSL's mini_init mounts it (microsoft/WSL src/linux/init/main.cpp:4041 at
# 3e27a6a: UtilMount(nullptr, CGROUP_MOUNTPOINT, "cgroup2", 0, nullptr)): its root cgroup's
# memory.reclaim is what WSL's gradual autoMemoryReclaim writes (util.cpp:3532, RECLAIM_PATH).
mount -t cgroup2 cgroup2 /sys/fs/cgroup || echo "reclaimlab-init: could not mount cgroup2"
while read -r mod; do
  insmod "/lib/modules/$mod.ko" || echo "reclaimlab-init: insmod $mod failed"
done < /modules.load
# WSL sets page_reporting.page_reporting_order on the kernel command line (microsoft/WSL helpers.cpp).
# This guest's kernel (Debian 6.1) replaces that value with pageblock_order (9) when virtio_balloon
# registers for page reporting, so set it again through the module parameter once the driver is up;
# the agent then reads and reports what the kernel uses.
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    page_reporting.page_reporting_order=*)
      echo "${arg#*=}" > /sys/module/page_reporting/parameters/page_reporting_order \
        || echo "reclaimlab-init: could not set page_reporting_order"
      ;;
  esac
done
if [ -b /dev/vda ]; then
  mount -t ext4 -o noatime /dev/vda /mnt || echo "reclaimlab-init: could not mount /dev/vda"
fi
# The agent's port appears once virtio_console has probed; wait up to ~5 s for it.
port=""
for _ in $(seq 50); do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = reclaimlab ] && port="/dev/${p##*/}"
  done
  [ -n "$port" ] && [ -c "$port" ] && break
  port=""
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "reclaimlab-init: no virtio-serial port named reclaimlab; is virtio_console loaded?"
else
  /agent "$port"
  echo "reclaimlab-init: agent exited with status $?"
fi
poweroff -f
