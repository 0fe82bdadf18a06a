# The tools template's payload (run by busybox sh): make an ext4 filesystem in a file,
# check it, read its label back, and say what happened in lines the tests look for.
set -e
/sbin/mke2fs -q -t ext4 -L appliance-test /tmp/scratch.img 16M
/sbin/e2fsck -fn /tmp/scratch.img >/tmp/fsck.out 2>&1
echo "tools: e2fsck $(/bin/busybox tail -n 1 /tmp/fsck.out)"
echo "tools: label $(/sbin/blkid -o value -s LABEL /tmp/scratch.img)"
echo "tools: $(/sbin/mke2fs -V 2>&1 | /bin/busybox head -n 1)"
/bin/probe 0x20 work_done
