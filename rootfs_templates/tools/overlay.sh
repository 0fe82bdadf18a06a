# tools-erofs's payload: the tools template's work, written into the root itself, which is
# a read-only EROFS image under a tmpfs overlay: every write lands in RAM.
set -e
/bin/busybox mkdir -p /work
/sbin/mke2fs -q -t ext4 -L appliance-test /work/scratch.img 16M
/sbin/e2fsck -fn /work/scratch.img >/work/fsck.out 2>&1
echo "tools: e2fsck $(/bin/busybox tail -n 1 /work/fsck.out)"
echo "tools: label $(/sbin/blkid -o value -s LABEL /work/scratch.img)"
echo "tools: root is $(/bin/busybox awk '$2 == "/" {print $3}' /proc/mounts)"
/bin/probe 0x20 work_done
