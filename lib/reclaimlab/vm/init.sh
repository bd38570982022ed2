#!/bin/busybox sh
# /init of the kit's guest (reclaimlab/vm/build.py packs it into the initramfs).
# Mounts the kernel's file systems, loads the virtio modules in dependency order, mounts the
# small ext4 disk (so the page cache has a real file system), then hands over to the agent.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r mod; do
  insmod "/lib/modules/$mod.ko" || echo "reclaimlab-init: insmod $mod failed"
done < /modules.load
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
